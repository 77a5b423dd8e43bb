//! The slice panel renderer: one wgpu pipeline (shaders/slice.wgsl), a texture cache keyed by
//! (source id, slice), one uniform buffer per panel. The per-frame [`SliceCallback`] carries plain data:
//! `Arc`s of the sources (uploaded only on a cache miss) and the uniforms.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use eframe::egui;
use eframe::egui_wgpu::{self, wgpu};

use super::shaders::SLICE_WGSL;
use super::Colormap;
use crate::imaging::{Mask, Volume, WindowLevel};

/// Bytes of slice textures kept on the GPU before the least recently used are dropped.
const TEXTURE_BUDGET_BYTES: u64 = 768 << 20;

static NEXT_SOURCE_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id for a texture source (a volume, a mask, a heatmap). Change the id when the data changes:
/// the cache is keyed by it.
pub fn new_source_id() -> u64 {
    NEXT_SOURCE_ID.fetch_add(1, Ordering::Relaxed)
}

/// Shader flags; keep in sync with the FLAG_ constants of shaders/slice.wgsl.
mod flag {
    pub const GT: u32 = 1;
    pub const PRED: u32 = 2;
    pub const CONTOUR: u32 = 4;
    pub const HEAT: u32 = 8;
    pub const SUPERPIXELS: u32 = 16;
    pub const PADDING: u32 = 32;
    pub const HEAT_SIGNED: u32 = 64;
}

/// Uniforms of one panel. Keep in sync with `Params` in shaders/slice.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SliceUniforms {
    pub origin_px: [f32; 2],
    pub image_offset: [f32; 2],
    pub image_size: [f32; 2],
    pub px_to_image: [f32; 2],
    pub flags: u32,
    pub window_center: f32,
    pub window_width: f32,
    pub heat_min: f32,
    pub heat_max: f32,
    pub heat_opacity: f32,
    pub heat_threshold: f32,
    pub mask_opacity: f32,
    pub image_colormap: u32,
    pub heat_colormap: u32,
    pub padding_value: f32,
    pub _pad0: u32,
}

/// Where the image sits in the panel, in points: the screen point `centre` shows image pixel
/// coordinate `image_centre`, and one image pixel spans `points_per_pixel` (x, y) points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ViewTransform {
    pub centre: egui::Pos2,
    pub image_centre: egui::Vec2,
    pub points_per_pixel: egui::Vec2,
}

impl ViewTransform {
    /// Screen point → image pixel coordinates (continuous; pixel (i, j) covers [i, i+1) × [j, j+1)).
    pub fn to_image(&self, p: egui::Pos2) -> egui::Vec2 {
        (p - self.centre) / self.points_per_pixel + self.image_centre
    }

    /// Image pixel coordinates → screen point.
    pub fn to_screen(&self, q: egui::Vec2) -> egui::Pos2 {
        self.centre + (q - self.image_centre) * self.points_per_pixel
    }
}

/// How a panel draws its layers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SliceStyle {
    pub window: WindowLevel,
    pub image_colormap: Colormap,
    pub heat_colormap: Colormap,
    pub heat_opacity: f32,
    /// Normalised (0..1) values below this are not drawn.
    pub heat_threshold: f32,
    pub mask_opacity: f32,
    pub contour_only: bool,
    pub show_superpixels: bool,
}

impl Default for SliceStyle {
    fn default() -> Self {
        SliceStyle {
            window: WindowLevel::new(0.5, 1.0),
            image_colormap: Colormap::Grey,
            heat_colormap: Colormap::Jet,
            heat_opacity: 0.5,
            heat_threshold: 0.0,
            mask_opacity: 0.45,
            contour_only: false,
            show_superpixels: true,
        }
    }
}

/// A mask volume shown at one slice.
#[derive(Debug, Clone)]
pub struct MaskLayer {
    pub source: u64,
    pub mask: Arc<Mask>,
}

/// A heatmap on the slice's grid (H×W, raw values; normalised in the shader by `min`/`max`).
#[derive(Debug, Clone)]
pub struct HeatLayer {
    pub source: u64,
    pub values: Arc<Vec<f32>>,
    pub min: f32,
    pub max: f32,
    /// Signed methods (LRP, IG, ...): coloured around 0, thresholded on |value|.
    pub signed: bool,
}

/// Labels on the slice's grid (H×W), e.g. LIME's superpixels.
#[derive(Debug, Clone)]
pub struct LabelLayer {
    pub source: u64,
    pub labels: Arc<Vec<u32>>,
}

/// What one panel shows at slice `z`.
#[derive(Debug, Clone)]
pub struct SliceLayers {
    pub volume_source: u64,
    pub volume: Arc<Volume>,
    pub z: usize,
    pub gt: Option<MaskLayer>,
    pub pred: Option<MaskLayer>,
    pub heat: Option<HeatLayer>,
    pub superpixels: Option<LabelLayer>,
}

/// The per-frame paint callback of one panel.
pub struct SliceCallback {
    /// Identifies the panel's uniform buffer; stable across frames.
    pub panel: u64,
    pub rect: egui::Rect,
    pub transform: ViewTransform,
    pub layers: SliceLayers,
    pub style: SliceStyle,
}

impl SliceCallback {
    /// The uniforms for a screen with `pixels_per_point`.
    pub fn uniforms(&self, pixels_per_point: f32) -> SliceUniforms {
        let t = &self.transform;
        let [_, h, w] = self.layers.volume.dims();
        let s = &self.style;
        let mut flags = 0;
        if self.layers.gt.is_some() {
            flags |= flag::GT;
        }
        if self.layers.pred.is_some() {
            flags |= flag::PRED;
        }
        if s.contour_only {
            flags |= flag::CONTOUR;
        }
        let (mut heat_min, mut heat_max) = (0.0, 1.0);
        if let Some(h) = &self.layers.heat {
            flags |= flag::HEAT;
            if h.signed {
                flags |= flag::HEAT_SIGNED;
            }
            heat_min = h.min;
            heat_max = h.max;
        }
        if self.layers.superpixels.is_some() && s.show_superpixels {
            flags |= flag::SUPERPIXELS;
        }
        let padding = self.layers.volume.padding_value;
        if padding.is_some() {
            flags |= flag::PADDING;
        }
        SliceUniforms {
            origin_px: [t.centre.x * pixels_per_point, t.centre.y * pixels_per_point],
            image_offset: [t.image_centre.x, t.image_centre.y],
            image_size: [w as f32, h as f32],
            px_to_image: [
                1.0 / (t.points_per_pixel.x * pixels_per_point),
                1.0 / (t.points_per_pixel.y * pixels_per_point),
            ],
            flags,
            window_center: s.window.center,
            window_width: s.window.width,
            heat_min,
            heat_max,
            heat_opacity: s.heat_opacity,
            heat_threshold: s.heat_threshold,
            mask_opacity: s.mask_opacity,
            image_colormap: s.image_colormap.shader_index(),
            heat_colormap: s.heat_colormap.shader_index(),
            padding_value: padding.unwrap_or(0.0),
            _pad0: 0,
        }
    }
}

/// Texture cache key: (source, slice); slice 0 for single-plane sources.
type TexKey = (u64, u32);

struct CachedTexture {
    view: wgpu::TextureView,
    bytes: u64,
    last_used: u64,
}

/// GPU state shared by every panel, kept in egui_wgpu's `callback_resources`.
pub struct SliceRenderer {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    placeholder_float: wgpu::TextureView,
    placeholder_uint: wgpu::TextureView,
    textures: HashMap<TexKey, CachedTexture>,
    texture_bytes: u64,
    uniforms: HashMap<u64, wgpu::Buffer>,
    bind_groups: HashMap<(u64, [TexKey; 5]), wgpu::BindGroup>,
    /// The bind group each panel draws with this frame.
    current: HashMap<u64, (u64, [TexKey; 5])>,
    tick: u64,
    uploads: u64,
}

/// Builds the pipeline for `target_format` and puts it into the renderer's callback resources. Call
/// once at start-up (the app and the tests do).
pub fn install(render_state: &egui_wgpu::RenderState) {
    let renderer = SliceRenderer::new(&render_state.device, render_state.target_format);
    render_state.renderer.write().callback_resources.insert(renderer);
}

impl SliceRenderer {
    pub fn new(device: &wgpu::Device, target_format: wgpu::TextureFormat) -> Self {
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("radlens slice"),
            source: wgpu::ShaderSource::Wgsl(SLICE_WGSL.into()),
        });
        let tex_entry = |binding: u32, sample_type: wgpu::TextureSampleType| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::FRAGMENT,
            ty: wgpu::BindingType::Texture {
                sample_type,
                view_dimension: wgpu::TextureViewDimension::D2,
                multisampled: false,
            },
            count: None,
        };
        let float = wgpu::TextureSampleType::Float { filterable: false };
        let uint = wgpu::TextureSampleType::Uint;
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("radlens slice"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                tex_entry(1, float),
                tex_entry(2, uint),
                tex_entry(3, uint),
                tex_entry(4, float),
                tex_entry(5, uint),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("radlens slice"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("radlens slice"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &shader,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &shader,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format: target_format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        let placeholder = |format: wgpu::TextureFormat| {
            device
                .create_texture(&wgpu::TextureDescriptor {
                    label: Some("radlens placeholder"),
                    size: wgpu::Extent3d { width: 1, height: 1, depth_or_array_layers: 1 },
                    mip_level_count: 1,
                    sample_count: 1,
                    dimension: wgpu::TextureDimension::D2,
                    format,
                    usage: wgpu::TextureUsages::TEXTURE_BINDING,
                    view_formats: &[],
                })
                .create_view(&wgpu::TextureViewDescriptor::default())
        };
        SliceRenderer {
            pipeline,
            layout,
            placeholder_float: placeholder(wgpu::TextureFormat::R32Float),
            placeholder_uint: placeholder(wgpu::TextureFormat::R32Uint),
            textures: HashMap::new(),
            texture_bytes: 0,
            uniforms: HashMap::new(),
            bind_groups: HashMap::new(),
            current: HashMap::new(),
            tick: 0,
            uploads: 0,
        }
    }

    /// Slice textures uploaded so far (a cache miss each); for tests and the frame benchmark.
    pub fn uploads(&self) -> u64 {
        self.uploads
    }

    /// Textures currently cached.
    pub fn cached_textures(&self) -> usize {
        self.textures.len()
    }

    /// Makes sure the texture for `key` exists, uploading `data()` on a miss.
    #[allow(clippy::too_many_arguments)]
    fn ensure_texture(
        &mut self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        key: TexKey,
        format: wgpu::TextureFormat,
        width: usize,
        height: usize,
        data: impl FnOnce() -> Vec<u8>,
    ) {
        self.tick += 1;
        if let Some(t) = self.textures.get_mut(&key) {
            t.last_used = self.tick;
            return;
        }
        let bytes_per_texel = format.block_copy_size(None).unwrap_or(4);
        let bytes = bytes_per_texel as u64 * width as u64 * height as u64;
        self.evict_for(bytes);
        let size = wgpu::Extent3d { width: width as u32, height: height as u32, depth_or_array_layers: 1 };
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("radlens slice"),
            size,
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &texture,
                mip_level: 0,
                origin: wgpu::Origin3d::ZERO,
                aspect: wgpu::TextureAspect::All,
            },
            &data(),
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(bytes_per_texel * width as u32),
                rows_per_image: Some(height as u32),
            },
            size,
        );
        self.uploads += 1;
        self.texture_bytes += bytes;
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        self.textures.insert(key, CachedTexture { view, bytes, last_used: self.tick });
    }

    /// Drops the least recently used textures until `incoming` more bytes fit the budget.
    fn evict_for(&mut self, incoming: u64) {
        while self.texture_bytes + incoming > TEXTURE_BUDGET_BYTES && !self.textures.is_empty() {
            let oldest = self.textures.iter().min_by_key(|(_, t)| t.last_used).map(|(k, _)| *k);
            let Some(key) = oldest else { break };
            if let Some(t) = self.textures.remove(&key) {
                self.texture_bytes -= t.bytes;
            }
            // Bind groups hold views of dropped textures: rebuild them as needed.
            self.bind_groups.retain(|(_, keys), _| !keys.contains(&key));
        }
    }

    fn prepare_panel(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, cb: &SliceCallback, ppp: f32) {
        let layers = &cb.layers;
        let [depth, h, w] = layers.volume.dims();
        let z = layers.z.min(depth.saturating_sub(1));
        let none: TexKey = (0, 0);
        let image_key = (layers.volume_source, z as u32);
        self.ensure_texture(device, queue, image_key, wgpu::TextureFormat::R32Float, w, h, || {
            bytemuck::cast_slice(layers.volume.slice(z)).to_vec()
        });
        let mask_key = |this: &mut Self, m: &Option<MaskLayer>| -> TexKey {
            match m {
                Some(m) if m.mask.dims() == layers.volume.dims() => {
                    let key = (m.source, z as u32);
                    this.ensure_texture(device, queue, key, wgpu::TextureFormat::R32Uint, w, h, || {
                        m.mask.slice(z).iter().flat_map(|&l| (l as u32).to_ne_bytes()).collect()
                    });
                    key
                }
                _ => none,
            }
        };
        let gt_key = mask_key(self, &layers.gt);
        let pred_key = mask_key(self, &layers.pred);
        let heat_key = match &layers.heat {
            Some(hm) if hm.values.len() == h * w => {
                let key = (hm.source, 0);
                self.ensure_texture(device, queue, key, wgpu::TextureFormat::R32Float, w, h, || {
                    bytemuck::cast_slice(&hm.values[..]).to_vec()
                });
                key
            }
            _ => none,
        };
        let sp_key = match &layers.superpixels {
            Some(sp) if sp.labels.len() == h * w => {
                let key = (sp.source, 0);
                self.ensure_texture(device, queue, key, wgpu::TextureFormat::R32Uint, w, h, || {
                    bytemuck::cast_slice(&sp.labels[..]).to_vec()
                });
                key
            }
            _ => none,
        };
        let uniforms = cb.uniforms(ppp);
        let buffer = self.uniforms.entry(cb.panel).or_insert_with(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("radlens slice uniforms"),
                size: std::mem::size_of::<SliceUniforms>() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        queue.write_buffer(buffer, 0, bytemuck::bytes_of(&uniforms));
        let keys = [image_key, gt_key, pred_key, heat_key, sp_key];
        let bind_key = (cb.panel, keys);
        if !self.bind_groups.contains_key(&bind_key) {
            if self.bind_groups.len() > 256 {
                self.bind_groups.clear();
            }
            let view = |k: TexKey, uint: bool| -> &wgpu::TextureView {
                match self.textures.get(&k) {
                    Some(t) if k != none => &t.view,
                    _ if uint => &self.placeholder_uint,
                    _ => &self.placeholder_float,
                }
            };
            let Some(buffer) = self.uniforms.get(&cb.panel) else { return };
            let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("radlens slice"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: buffer.as_entire_binding() },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::TextureView(view(image_key, false)),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: wgpu::BindingResource::TextureView(view(gt_key, true)),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: wgpu::BindingResource::TextureView(view(pred_key, true)),
                    },
                    wgpu::BindGroupEntry {
                        binding: 4,
                        resource: wgpu::BindingResource::TextureView(view(heat_key, false)),
                    },
                    wgpu::BindGroupEntry {
                        binding: 5,
                        resource: wgpu::BindingResource::TextureView(view(sp_key, true)),
                    },
                ],
            });
            self.bind_groups.insert(bind_key, group);
        }
        self.current.insert(cb.panel, bind_key);
    }
}

impl egui_wgpu::CallbackTrait for SliceCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        screen_descriptor: &egui_wgpu::ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut egui_wgpu::CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        if let Some(r) = resources.get_mut::<SliceRenderer>() {
            r.prepare_panel(device, queue, self, screen_descriptor.pixels_per_point);
        }
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &egui_wgpu::CallbackResources,
    ) {
        let Some(r) = resources.get::<SliceRenderer>() else { return };
        let Some(group) = r.current.get(&self.panel).and_then(|k| r.bind_groups.get(k)) else { return };
        render_pass.set_pipeline(&r.pipeline);
        render_pass.set_bind_group(0, group, &[]);
        render_pass.draw(0..3, 0..1);
    }
}
