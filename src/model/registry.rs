//! From a manifest to a network: the one place that maps `arch` (+ `encoder`, `[arch_config]`) to the
//! architecture constructors.

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;

use super::convnext::{ConvNext, ConvNextConfig};
use super::densenet::{op_norm, smp_densenet_encoder, DenseNet, DenseNetConfig, XrvDenseNet};
use super::manifest::{Arch, ArchConfig, EncoderName, Manifest, VggLayer as ManifestVggLayer};
use super::resnet::{ResNet, ResNetConfig};
use super::resnet_unet::{ResNetUnet, ResNetUnetConfig};
use super::smp_unet::{smp_unet_resnet_with, SmpUnet, SmpUnetConfig};
use super::unet::{Unet, UnetConfig};
use super::vgg::{Vgg, VggConfig, VggLayer};
use super::weights::StateDict;
use super::Network;

type Calibration = Box<dyn Fn(&Tensor) -> candle_core::Result<Tensor> + Send + Sync>;

pub struct BuiltNetwork {
    pub net: Box<dyn Network>,
    /// Probabilities → recalibrated probabilities (torchxrayvision's `op_threshs`).
    pub calibrate: Option<Calibration>,
}

fn plain(net: impl Network + 'static) -> BuiltNetwork {
    BuiltNetwork { net: Box::new(net), calibrate: None }
}

fn resnet_depth(e: EncoderName) -> candle_core::Result<usize> {
    match e {
        EncoderName::Resnet18 => Ok(18),
        EncoderName::Resnet34 => Ok(34),
        EncoderName::Resnet50 => Ok(50),
        other => candle_core::bail!("encoder {} is not a ResNet", other.name()),
    }
}

fn resnet_config(depth: usize, ac: &ArchConfig, in_channels: usize) -> candle_core::Result<ResNetConfig> {
    let mut c = ResNetConfig::by_depth(depth)?.with_in_channels(in_channels);
    if let Some(w) = ac.base_width {
        c = c.with_base_width(w);
    }
    if let Some(layers) = &ac.layers {
        if layers.len() != 4 {
            candle_core::bail!("arch_config.layers needs 4 entries, got {}", layers.len());
        }
        c.layers = [layers[0], layers[1], layers[2], layers[3]];
    }
    Ok(c)
}

fn densenet_config(
    base: DenseNetConfig,
    ac: &ArchConfig,
    in_channels: usize,
    classes: usize,
) -> DenseNetConfig {
    let mut c = base.with_in_channels(in_channels).with_num_classes(classes);
    if let Some(g) = ac.growth_rate {
        c.growth_rate = g;
    }
    if let Some(b) = &ac.block_config {
        c.block_config = b.clone();
    }
    if let Some(n) = ac.num_init_features {
        c.num_init_features = n;
    }
    if let Some(b) = ac.bn_size {
        c.bn_size = b;
    }
    c
}

fn smp_config(ac: &ArchConfig) -> candle_core::Result<SmpUnetConfig> {
    let mut c = match &ac.decoder_channels {
        Some(d) => SmpUnetConfig::with_decoder_channels(d),
        None => SmpUnetConfig::default(),
    };
    if let Some(depth) = ac.encoder_depth {
        if depth > c.decoder_channels.len() {
            candle_core::bail!(
                "encoder_depth {depth} needs as many decoder_channels, got {}",
                c.decoder_channels.len()
            );
        }
        c.decoder_channels.truncate(depth);
    }
    Ok(c)
}

/// Checkpoint tensors the network legitimately leaves unused: smp keeps the deeper ResNet stages in its
/// state dict when `encoder_depth` < 5, though its forward never reaches them; torchxrayvision's
/// `op_threshs` buffer is read separately.
pub fn unused_ok(m: &Manifest) -> Vec<String> {
    let mut names = vec!["op_threshs".to_string()];
    if m.arch == Arch::SmpUnet && m.encoder != Some(EncoderName::Densenet121) {
        let depth = m.arch_config.encoder_depth.unwrap_or(5);
        names.extend((depth.max(1)..5).map(|i| format!("encoder.layer{i}.")));
    }
    names
}

/// Builds the network `manifest` describes, reading its parameters through `vb`.
pub fn build_network(
    m: &Manifest,
    vb: VarBuilder<'static>,
    weights: &StateDict,
    device: &Device,
) -> candle_core::Result<BuiltNetwork> {
    let ac = &m.arch_config;
    let classes = m.classes.len();
    let cin = m.in_channels;
    Ok(match m.arch {
        Arch::Unet => {
            let mut c = UnetConfig::standard();
            c.in_channels = cin;
            if let Some(w) = ac.base_width {
                c = c.with_base_width(w);
            }
            if let Some(b) = ac.bilinear {
                c.bilinear = b;
            }
            plain(Unet::new(vb, &c, classes)?)
        }
        Arch::ResnetUnet => {
            let enc =
                m.encoder.ok_or_else(|| candle_core::Error::Msg("resnet-unet needs an encoder".into()))?;
            let mut c = ResNetUnetConfig::resnet(resnet_depth(enc)?)?;
            c.encoder = resnet_config(resnet_depth(enc)?, ac, cin)?;
            if let Some(d) = &ac.decoder_channels {
                if d.len() != 4 {
                    candle_core::bail!("resnet-unet decoder_channels needs 4 entries, got {}", d.len());
                }
                c.decoder_channels = [d[0], d[1], d[2], d[3]];
            }
            plain(ResNetUnet::new(vb, &c, classes)?)
        }
        Arch::SmpUnet => {
            let enc = m.encoder.ok_or_else(|| candle_core::Error::Msg("smp-unet needs an encoder".into()))?;
            let cfg = smp_config(ac)?;
            match enc {
                EncoderName::Densenet121 => {
                    let dc = densenet_config(DenseNetConfig::densenet121(), ac, cin, classes);
                    let encoder = smp_densenet_encoder(vb.pp("encoder"), &dc)?;
                    plain(SmpUnet::with_encoder(vb, encoder, &cfg, classes)?)
                }
                resnet => {
                    let rc = resnet_config(resnet_depth(resnet)?, ac, cin)?;
                    plain(smp_unet_resnet_with(vb, &rc, &cfg, classes)?)
                }
            }
        }
        Arch::Resnet18 | Arch::Resnet34 | Arch::Resnet50 => {
            let depth = match m.arch {
                Arch::Resnet18 => 18,
                Arch::Resnet34 => 34,
                _ => 50,
            };
            plain(ResNet::new(vb, &resnet_config(depth, ac, cin)?, classes)?)
        }
        Arch::Densenet121 | Arch::Densenet201 => {
            let base = if m.arch == Arch::Densenet121 {
                DenseNetConfig::densenet121()
            } else {
                DenseNetConfig::densenet201()
            };
            plain(DenseNet::load(vb, &densenet_config(base, ac, cin, classes))?)
        }
        Arch::XrvDensenet121 => {
            let c = densenet_config(DenseNetConfig::xrv_densenet121(), ac, cin, classes);
            let net = XrvDenseNet::load(vb, &c)?.with_calibrated_output(false);
            let calibrate: Option<Calibration> = match weights.get("op_threshs") {
                Some(t) => {
                    let t = t.to_device(device)?;
                    Some(Box::new(move |p: &Tensor| op_norm(p, &t)))
                }
                None => None,
            };
            BuiltNetwork { net: Box::new(net), calibrate }
        }
        Arch::Vgg16 | Arch::Vgg16Bn => {
            let mut c = if m.arch == Arch::Vgg16 { VggConfig::vgg16() } else { VggConfig::vgg16_bn() };
            c = c.with_num_classes(classes);
            c.in_channels = cin;
            if let Some(layers) = &ac.vgg_cfg {
                c.layers = layers
                    .iter()
                    .map(|l| match l {
                        ManifestVggLayer::Conv(n) => VggLayer::Conv(*n),
                        ManifestVggLayer::MaxPool => VggLayer::MaxPool,
                    })
                    .collect();
            }
            if let Some(w) = ac.classifier_width {
                c.classifier_width = w;
            }
            plain(Vgg::load(vb, &c)?)
        }
        Arch::ConvnextTiny | Arch::ConvnextBase => {
            let mut c = if m.arch == Arch::ConvnextTiny {
                ConvNextConfig::convnext_tiny()
            } else {
                ConvNextConfig::convnext_base()
            }
            .with_num_classes(classes);
            c.in_channels = cin;
            if let Some(d) = &ac.depths {
                c.depths = d.clone();
            }
            if let Some(d) = &ac.dims {
                c.dims = d.clone();
            }
            plain(ConvNext::load(vb, &c)?)
        }
    })
}
