//! Dataset discovery and splits on generated folders in the layouts of the open data.

use std::path::Path;

use radlens::io::dataset::{open_dataset, DatasetOptions, Layout, Split};

fn touch_png(path: &Path, value: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    radlens::io::raster::write_png_u8(path, 4, 3, &[value; 12]).unwrap();
}

#[test]
fn split_folders_keep_the_datasets_own_test_split() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..10 {
        touch_png(&dir.path().join(format!("train/images/{i}.png")), 10);
        touch_png(&dir.path().join(format!("train/infection_binary/{i}.png")), 255);
    }
    for i in 10..14 {
        touch_png(&dir.path().join(format!("test/images/{i}.png")), 10);
        touch_png(&dir.path().join(format!("test/infection_binary/{i}.png")), 0);
    }
    let ds = open_dataset(dir.path(), &DatasetOptions::default()).unwrap();
    assert_eq!(ds.layout, Layout::SplitFolders);
    assert_eq!(ds.mask_dir.as_deref(), Some("infection_binary"));
    assert_eq!(ds.samples.len(), 14);
    let test: Vec<String> = ds.split(Split::Test, 1).into_iter().map(|s| s.id).collect();
    assert_eq!(test, ["10", "11", "12", "13"]);
    let train = ds.split(Split::Train, 1);
    let val = ds.split(Split::Val, 1);
    assert_eq!((train.len(), val.len()), (8, 2));
    // Train and validation partition the train folder; no test slice is ever in them.
    let mut ids: Vec<String> = train.iter().chain(&val).map(|s| s.id.clone()).collect();
    ids.sort_by_key(|s| s.parse::<u32>().unwrap());
    assert_eq!(ids, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    // Seeded: the same seed gives the same division, another seed (almost surely) another.
    assert_eq!(ds.split(Split::Val, 1), val);
    let other: Vec<_> = (2..20).map(|seed| ds.split(Split::Val, seed)).collect();
    assert!(other.iter().any(|v| *v != val));
    for s in &train {
        assert!(s.mask.as_ref().unwrap().ends_with(format!("train/infection_binary/{}.png", s.id)));
    }
}

#[test]
fn image_mask_folders_with_labels_split_64_16_20_stratified() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("file,class,source_split\n");
    for i in 0..50 {
        let (class, name) = if i < 30 {
            ("COVID-19", format!("covid_{i:05}.png"))
        } else {
            ("Normal", format!("normal_{i:05}.png"))
        };
        touch_png(&dir.path().join("images").join(&name), 10);
        touch_png(&dir.path().join("infection_masks").join(&name), if i < 30 { 255 } else { 0 });
        touch_png(&dir.path().join("lung_masks").join(&name), 255);
        csv.push_str(&format!("{name},{class},Train\n"));
    }
    std::fs::write(dir.path().join("labels.csv"), csv).unwrap();
    let ds = open_dataset(dir.path(), &DatasetOptions::default()).unwrap();
    assert_eq!(ds.layout, Layout::ImageMaskFolders);
    assert_eq!(ds.mask_dir.as_deref(), Some("infection_masks"));
    assert_eq!(ds.classes, ["COVID-19", "Normal"]);
    let count =
        |split, class: &str| ds.split(split, 7).iter().filter(|s| s.label.as_deref() == Some(class)).count();
    // 30 COVID: 19 / 5 / 6; 20 Normal: 13 / 3 / 4.
    assert_eq!(
        [count(Split::Train, "COVID-19"), count(Split::Val, "COVID-19"), count(Split::Test, "COVID-19")],
        [19, 5, 6]
    );
    assert_eq!(
        [count(Split::Train, "Normal"), count(Split::Val, "Normal"), count(Split::Test, "Normal")],
        [13, 3, 4]
    );
    let lungs =
        open_dataset(dir.path(), &DatasetOptions { mask_dir: Some("lung_masks".into()), no_masks: false })
            .unwrap();
    assert!(lungs.samples[0].mask.as_ref().unwrap().to_string_lossy().contains("lung_masks"));
    let cls = open_dataset(dir.path(), &DatasetOptions { mask_dir: None, no_masks: true }).unwrap();
    assert!(cls.samples.iter().all(|s| s.mask.is_none() && s.label.is_some()));
}

#[test]
fn bad_datasets_name_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let err = open_dataset(&dir.path().join("nope"), &DatasetOptions::default()).unwrap_err().to_string();
    assert!(err.contains("no such file") && err.contains("nope"), "{err}");
    let err = open_dataset(dir.path(), &DatasetOptions::default()).unwrap_err().to_string();
    assert!(err.contains("not a dataset folder"), "{err}");

    touch_png(&dir.path().join("images/a.png"), 1);
    touch_png(&dir.path().join("images/b.png"), 1);
    touch_png(&dir.path().join("masks/a.png"), 255);
    let err = open_dataset(dir.path(), &DatasetOptions::default()).unwrap_err().to_string();
    assert!(err.contains("image has no mask") && err.ends_with("b.png"), "{err}");

    touch_png(&dir.path().join("masks/b.png"), 255);
    touch_png(&dir.path().join("masks/c.png"), 255);
    let err = open_dataset(dir.path(), &DatasetOptions::default()).unwrap_err().to_string();
    assert!(err.contains("mask has no image") && err.ends_with("c.png"), "{err}");
    std::fs::remove_file(dir.path().join("masks/c.png")).unwrap();

    std::fs::write(dir.path().join("labels.csv"), "file,class\na.png,Normal\n").unwrap();
    let err = open_dataset(dir.path(), &DatasetOptions::default()).unwrap_err().to_string();
    assert!(err.contains("no row in labels.csv") && err.ends_with("b.png"), "{err}");
    std::fs::write(dir.path().join("labels.csv"), "name,what\n").unwrap();
    let err = open_dataset(dir.path(), &DatasetOptions::default()).unwrap_err().to_string();
    assert!(err.contains("no file column") && err.ends_with("labels.csv"), "{err}");

    let err = open_dataset(dir.path(), &DatasetOptions { mask_dir: Some("gone".into()), no_masks: false })
        .unwrap_err()
        .to_string();
    assert!(err.contains("mask folder not found"), "{err}");
}

#[test]
fn csv_lines_follow_rfc4180_quoting() {
    use radlens::io::dataset::split_csv_line;
    assert_eq!(split_csv_line(r#"a,"b,c","say ""hi""",,"#), ["a", "b,c", r#"say "hi""#, "", ""]);
}

/// Manual check on the real data: `cargo test --test dataset -- --ignored`.
#[test]
#[ignore = "needs ../shared/data"]
fn shared_data_layouts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let ct = open_dataset(&root.join("ct_covid_semiseg_infnet"), &DatasetOptions::default()).unwrap();
    assert_eq!(
        (ct.split(Split::Test, 0).len(), ct.split(Split::Train, 0).len() + ct.split(Split::Val, 0).len()),
        (48, 50)
    );
    let cxr =
        open_dataset(&root.join("cxr_covid_qu_ex_infection_train"), &DatasetOptions::default()).unwrap();
    assert_eq!(cxr.samples.len(), 1200);
    assert_eq!(cxr.classes, ["COVID-19", "Non-COVID", "Normal"]);
}
