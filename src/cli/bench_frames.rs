//! `radlens bench frames`: frame times of the viewer's slice rendering, headless. Four linked 512²
//! panels (GT + prediction overlay, heatmap, superpixel-free image) scroll through a 300-slice
//! synthetic volume; each frame runs the egui pass, tessellates, uploads what the texture cache misses,
//! renders to an offscreen texture with the same wgpu pipeline as the window and waits for the GPU.
//! Three runs: scrolling (every slice new: uploads), scrolling back over cached slices, and redrawing a
//! still frame (uniforms only).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use eframe::egui::{self, Pos2, Rect, Vec2};
use eframe::egui_wgpu::{self, wgpu};

use super::CliError;
use crate::imaging::{Mask, Unit, Volume, WindowLevel};
use crate::render::{new_source_id, HeatLayer, MaskLayer, SliceLayers, SliceStyle};
use crate::ui::viewer::{slice_view, Legend, PanelPaint, ViewState};

/// Runs future `f` to completion on this thread (wgpu's native futures resolve without an executor).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

struct Scene {
    volume: Arc<Volume>,
    volume_source: u64,
    gt: MaskLayer,
    pred: MaskLayer,
    heat: Vec<HeatLayer>,
}

fn scene(depth: usize, size: usize) -> Result<Scene, CliError> {
    let n = size * size;
    let mut data = Vec::with_capacity(depth * n);
    let mut gt = Vec::with_capacity(depth * n);
    let mut pred = Vec::with_capacity(depth * n);
    let c = size as f32 / 2.0;
    for z in 0..depth {
        let r = size as f32 * (0.15 + 0.1 * ((z as f32) / depth as f32 * std::f32::consts::PI).sin());
        for y in 0..size {
            for x in 0..size {
                let (dx, dy) = (x as f32 - c, y as f32 - c);
                let d = (dx * dx + dy * dy).sqrt();
                data.push(if d < size as f32 * 0.4 { -800.0 + (x ^ y ^ z) as f32 % 200.0 } else { 40.0 });
                gt.push(u16::from(d < r));
                pred.push(u16::from(((dx - 6.0).powi(2) + dy * dy).sqrt() < r * 0.9));
            }
        }
    }
    let mut volume = Volume::new(data, [depth, size, size], [1.0, 0.7, 0.7])
        .map_err(|e| CliError::Failed(e.to_string()))?;
    volume.unit = Unit::Hu;
    let dims = [depth, size, size];
    let mask = |l: Vec<u16>| Mask::new(l, dims).ok_or_else(|| CliError::Failed("mask size".into()));
    // Eight distinct maps reused across slices, each slice with its own source id (so a real upload).
    let planes: Vec<Arc<Vec<f32>>> = (0..8)
        .map(|k| {
            Arc::new(
                (0..n)
                    .map(|i| {
                        let (x, y) = ((i % size) as f32, (i / size) as f32);
                        (-((x - c - 10.0 * k as f32).powi(2) + (y - c).powi(2)) / (2.0 * 60.0f32.powi(2)))
                            .exp()
                    })
                    .collect(),
            )
        })
        .collect();
    let heat = (0..depth)
        .map(|z| HeatLayer {
            source: new_source_id(),
            values: planes[z % 8].clone(),
            min: 0.0,
            max: 1.0,
            signed: false,
        })
        .collect();
    Ok(Scene {
        volume: Arc::new(volume),
        volume_source: new_source_id(),
        gt: MaskLayer { source: new_source_id(), mask: Arc::new(mask(gt)?) },
        pred: MaskLayer { source: new_source_id(), mask: Arc::new(mask(pred)?) },
        heat,
    })
}

fn draw(ui: &mut egui::Ui, scene: &Scene, view: &mut ViewState, panel: f32) {
    egui::CentralPanel::no_frame().show(ui, |ui| {
        for i in 0..4 {
            let (r, c) = (i / 2, i % 2);
            let rect = Rect::from_min_size(
                Pos2::new(c as f32 * (panel + 4.0), r as f32 * (panel + 4.0)),
                Vec2::splat(panel),
            );
            let z = view.slice;
            let mut layers = SliceLayers {
                volume_source: scene.volume_source,
                volume: scene.volume.clone(),
                z,
                gt: None,
                pred: None,
                heat: None,
                superpixels: None,
            };
            let legend = match i {
                1 => {
                    layers.gt = Some(scene.gt.clone());
                    layers.pred = Some(scene.pred.clone());
                    Legend::Masks { gt: true, pred: true }
                }
                2 | 3 => {
                    layers.heat = Some(scene.heat[z].clone());
                    layers.gt = (i == 3).then(|| scene.gt.clone());
                    Legend::Colormap { map: crate::render::Colormap::Jet, min: 0.0, max: 1.0, signed: false }
                }
                _ => Legend::None,
            };
            let style = SliceStyle { contour_only: i == 3, ..SliceStyle::default() };
            let _ = slice_view(
                ui,
                rect,
                view,
                PanelPaint { panel: i as u64 + 1, layers, style, caption: "bench", legend, status: None },
            );
        }
    });
}

pub fn run(depth: usize, size: usize, out: &mut dyn Write) -> Result<(), CliError> {
    let depth = depth.max(2);
    writeln!(out, "building a {depth}×{size}×{size} synthetic volume with GT, prediction and heatmaps…")?;
    let scene = scene(depth, size)?;
    let setup = egui_wgpu::WgpuSetup::CreateNew(egui_wgpu::WgpuSetupCreateNew::without_display_handle());
    let instance = block_on(setup.new_instance());
    let config = egui_wgpu::WgpuConfiguration { wgpu_setup: setup, ..Default::default() };
    let rs = block_on(egui_wgpu::RenderState::create(
        &config,
        &instance,
        None,
        egui_wgpu::RendererOptions::default(),
    ))
    .map_err(|e| CliError::Failed(format!("no wgpu adapter: {e}")))?;
    let info = rs.adapter.get_info();
    writeln!(
        out,
        "adapter: {} ({:?}, {:?}, driver {})",
        info.name, info.backend, info.device_type, info.driver
    )?;
    crate::render::install(&rs);

    let panel = size as f32;
    let screen = Vec2::splat(2.0 * panel + 4.0);
    let ctx = egui::Context::default();
    let target = rs.device.create_texture(&wgpu::TextureDescriptor {
        label: Some("bench target"),
        size: wgpu::Extent3d { width: screen.x as u32, height: screen.y as u32, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format: rs.target_format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
        view_formats: &[],
    });
    let target_view = target.create_view(&wgpu::TextureViewDescriptor::default());
    let mut view =
        ViewState { slice: 0, zoom: 1.0, pan: Vec2::ZERO, window: WindowLevel::new(-600.0, 1500.0) };

    let frame = |view: &mut ViewState| -> Result<f64, CliError> {
        let t = Instant::now();
        let input = egui::RawInput {
            screen_rect: Some(Rect::from_min_size(Pos2::ZERO, screen)),
            ..Default::default()
        };
        let mut output = ctx.run_ui(input, |ui| draw(ui, &scene, view, panel));
        let ppp = output.pixels_per_point;
        let jobs = ctx.tessellate(output.shapes, ppp);
        let sd = egui_wgpu::ScreenDescriptor {
            size_in_pixels: [screen.x as u32, screen.y as u32],
            pixels_per_point: ppp,
        };
        let mut renderer = rs.renderer.write();
        let mut textures = std::mem::take(&mut output.textures_delta);
        for (id, deltas) in textures.set.drain() {
            for delta in &deltas {
                renderer.update_texture(&rs.device, &rs.queue, id, delta);
            }
        }
        let mut encoder =
            rs.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("bench") });
        let user = renderer.update_buffers(&rs.device, &rs.queue, &mut encoder, &jobs, &sd);
        {
            let mut pass = encoder
                .begin_render_pass(&wgpu::RenderPassDescriptor {
                    label: Some("bench"),
                    color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                        view: &target_view,
                        resolve_target: None,
                        ops: wgpu::Operations {
                            load: wgpu::LoadOp::Clear(wgpu::Color::BLACK),
                            store: wgpu::StoreOp::Store,
                        },
                        depth_slice: None,
                    })],
                    ..Default::default()
                })
                .forget_lifetime();
            renderer.render(&mut pass, &jobs, &sd);
        }
        rs.queue.submit(user.into_iter().chain(std::iter::once(encoder.finish())));
        rs.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(std::time::Duration::from_secs(30)),
            })
            .map_err(|e| CliError::Failed(format!("GPU wait failed: {e}")))?;
        for id in textures.free.drain() {
            renderer.free_texture(&id);
        }
        Ok(t.elapsed().as_secs_f64() * 1e3)
    };

    // Warm-up (font atlas, pipeline compilation on the driver).
    for _ in 0..3 {
        frame(&mut view)?;
    }
    let report = |out: &mut dyn Write, name: &str, mut ms: Vec<f64>| -> Result<(), CliError> {
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| ms[((p / 100.0) * (ms.len() - 1) as f64).round() as usize];
        writeln!(
            out,
            "{name:<34} {:>4} frames  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({:.0} fps at p50)",
            ms.len(),
            pct(50.0),
            pct(99.0),
            ms[ms.len() - 1],
            1e3 / pct(50.0)
        )?;
        Ok(())
    };
    let uploads0 = uploads(&rs);
    let mut scroll = Vec::with_capacity(depth);
    for z in 0..depth {
        view.slice = z;
        scroll.push(frame(&mut view)?);
    }
    let uploads1 = uploads(&rs);
    report(out, "scroll forward (uploads)", scroll)?;
    // Back over the last slices, which the cache still holds.
    let back = depth.min(64);
    let mut cached = Vec::with_capacity(back);
    for z in (depth - back..depth).rev() {
        view.slice = z;
        cached.push(frame(&mut view)?);
    }
    let uploads2 = uploads(&rs);
    report(out, "scroll back (cached slices)", cached)?;
    let mut still = Vec::with_capacity(60);
    for k in 0..60 {
        // Window changes each frame: a uniform write, no upload.
        view.window = WindowLevel::new(-600.0 + k as f32, 1500.0);
        still.push(frame(&mut view)?);
    }
    report(out, "same slice, window dragged", still)?;
    writeln!(
        out,
        "texture uploads: {} while scrolling forward ({:.2} per slice), {} scrolling back",
        uploads1 - uploads0,
        (uploads1 - uploads0) as f64 / depth as f64,
        uploads2 - uploads1
    )?;
    Ok(())
}

fn uploads(rs: &egui_wgpu::RenderState) -> u64 {
    rs.renderer.read().callback_resources.get::<crate::render::SliceRenderer>().map_or(0, |r| r.uploads())
}
