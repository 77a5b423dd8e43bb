// One slice panel: window/level of an R32Float slice, optional colormap, ground-truth / prediction masks
// (GT green, prediction red, overlap yellow; filled or contour-only), a heatmap with opacity and
// threshold, and superpixel boundaries. Everything per frame is a uniform: the slice, masks and maps are
// uploaded once (render/slice.rs caches them) and never recoloured on the CPU.
//
// Keep `Params` in sync with `SliceUniforms` in src/render/slice.rs.

struct Params {
    // image pixel (x, y) = (frag_px - origin_px) * px_to_image + image_offset
    origin_px: vec2<f32>,
    image_offset: vec2<f32>,
    image_size: vec2<f32>,
    px_to_image: vec2<f32>,
    flags: u32,
    window_center: f32,
    window_width: f32,
    heat_min: f32,
    heat_max: f32,
    heat_opacity: f32,
    heat_threshold: f32,
    mask_opacity: f32,
    image_colormap: u32,
    heat_colormap: u32,
    padding_value: f32,
    _pad0: u32,
};

const FLAG_GT: u32 = 1u;
const FLAG_PRED: u32 = 2u;
const FLAG_CONTOUR: u32 = 4u;
const FLAG_HEAT: u32 = 8u;
const FLAG_SUPERPIXELS: u32 = 16u;
const FLAG_PADDING: u32 = 32u;
const FLAG_HEAT_SIGNED: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var image_tex: texture_2d<f32>;
@group(0) @binding(2) var gt_tex: texture_2d<u32>;
@group(0) @binding(3) var pred_tex: texture_2d<u32>;
@group(0) @binding(4) var heat_tex: texture_2d<f32>;
@group(0) @binding(5) var superpixel_tex: texture_2d<u32>;

struct VsOut {
    @builtin(position) position: vec4<f32>,
};

// A triangle covering the callback's viewport.
@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> VsOut {
    var out: VsOut;
    let x = f32((i << 1u) & 2u) * 2.0 - 1.0;
    let y = f32(i & 2u) * 2.0 - 1.0;
    out.position = vec4<f32>(x, y, 0.0, 1.0);
    return out;
}

fn jet(t: f32) -> vec3<f32> {
    let x = clamp(t, 0.0, 1.0);
    return clamp(vec3<f32>(1.5 - abs(4.0 * x - 3.0), 1.5 - abs(4.0 * x - 2.0), 1.5 - abs(4.0 * x - 1.0)), vec3<f32>(0.0), vec3<f32>(1.0));
}

// Polynomial fits of matplotlib's inferno and viridis (Matt Zucconi, CC0).
fn inferno(t: f32) -> vec3<f32> {
    let x = clamp(t, 0.0, 1.0);
    let c0 = vec3<f32>(0.0002189403691192265, 0.001651004631001012, -0.01948089843709184);
    let c1 = vec3<f32>(0.1065134194856116, 0.5639564367884091, 3.932712388889277);
    let c2 = vec3<f32>(11.60249308247187, -3.972853965665698, -15.9423941062914);
    let c3 = vec3<f32>(-41.70399613139459, 17.43639888205313, 44.35414519872813);
    let c4 = vec3<f32>(77.162935699427, -33.40235894210092, -81.80730925738993);
    let c5 = vec3<f32>(-71.31942824499214, 32.62606426397723, 73.20951985803202);
    let c6 = vec3<f32>(25.13112622477341, -12.24266895238567, -23.07032500287172);
    return clamp(c0 + x * (c1 + x * (c2 + x * (c3 + x * (c4 + x * (c5 + x * c6))))), vec3<f32>(0.0), vec3<f32>(1.0));
}

fn viridis(t: f32) -> vec3<f32> {
    let x = clamp(t, 0.0, 1.0);
    let c0 = vec3<f32>(0.2777273272234177, 0.005407344544966578, 0.3340998053353061);
    let c1 = vec3<f32>(0.1050930431085774, 1.404613529898575, 1.384590162594685);
    let c2 = vec3<f32>(-0.3308618287255563, 0.214847559468213, 0.09509516302823659);
    let c3 = vec3<f32>(-4.634230498983486, -5.799100973351585, -19.33244095627987);
    let c4 = vec3<f32>(6.228269936347081, 14.17993336680509, 56.69055260068105);
    let c5 = vec3<f32>(4.776384997670288, -13.74514537774601, -65.35303263337234);
    let c6 = vec3<f32>(-5.435455855934631, 4.645852612178535, 26.3124352495832);
    return clamp(c0 + x * (c1 + x * (c2 + x * (c3 + x * (c4 + x * (c5 + x * c6))))), vec3<f32>(0.0), vec3<f32>(1.0));
}

fn colormap(which: u32, t: f32) -> vec3<f32> {
    switch which {
        case 1u: { return jet(t); }
        case 2u: { return inferno(t); }
        case 3u: { return viridis(t); }
        default: { return vec3<f32>(clamp(t, 0.0, 1.0)); }
    }
}

fn in_image(q: vec2<f32>) -> bool {
    return q.x >= 0.0 && q.y >= 0.0 && q.x < p.image_size.x && q.y < p.image_size.y;
}

fn texel(q: vec2<f32>) -> vec2<i32> {
    return clamp(vec2<i32>(floor(q)), vec2<i32>(0), vec2<i32>(p.image_size) - vec2<i32>(1));
}

// Bilinear interpolation by hand: R32Float is not filterable everywhere.
fn bilinear(t: texture_2d<f32>, q: vec2<f32>) -> f32 {
    let c = q - vec2<f32>(0.5);
    let base = floor(c);
    let f = c - base;
    let hi = vec2<i32>(p.image_size) - vec2<i32>(1);
    let i0 = clamp(vec2<i32>(base), vec2<i32>(0), hi);
    let i1 = clamp(vec2<i32>(base) + vec2<i32>(1), vec2<i32>(0), hi);
    let a = textureLoad(t, vec2<i32>(i0.x, i0.y), 0).r;
    let b = textureLoad(t, vec2<i32>(i1.x, i0.y), 0).r;
    let c2 = textureLoad(t, vec2<i32>(i0.x, i1.y), 0).r;
    let d = textureLoad(t, vec2<i32>(i1.x, i1.y), 0).r;
    return mix(mix(a, b, f.x), mix(c2, d, f.x), f.y);
}

fn label(t: texture_2d<u32>, q: vec2<f32>) -> u32 {
    if !in_image(q) {
        return 0u;
    }
    return textureLoad(t, texel(q), 0).r;
}

// True when a neighbour one screen pixel away carries a different label: a boundary one screen pixel
// wide at any zoom.
fn on_boundary(t: texture_2d<u32>, q: vec2<f32>, here: u32) -> bool {
    let d = p.px_to_image;
    return label(t, q + vec2<f32>(d.x, 0.0)) != here || label(t, q - vec2<f32>(d.x, 0.0)) != here
        || label(t, q + vec2<f32>(0.0, d.y)) != here || label(t, q - vec2<f32>(0.0, d.y)) != here;
}

// (colour, alpha) of a mask layer at q.
fn mask_layer(t: texture_2d<u32>, q: vec2<f32>) -> vec2<f32> {
    let here = min(label(t, q), 1u);
    if (p.flags & FLAG_CONTOUR) != 0u {
        let d = p.px_to_image;
        let n = min(label(t, q + vec2<f32>(d.x, 0.0)), 1u) + min(label(t, q - vec2<f32>(d.x, 0.0)), 1u)
            + min(label(t, q + vec2<f32>(0.0, d.y)), 1u) + min(label(t, q - vec2<f32>(0.0, d.y)), 1u);
        if here == 1u && n < 4u {
            return vec2<f32>(1.0, 1.0);
        }
        return vec2<f32>(0.0, 0.0);
    }
    return vec2<f32>(f32(here), p.mask_opacity * f32(here));
}

@fragment
fn fs_main(in: VsOut) -> @location(0) vec4<f32> {
    let q = (in.position.xy - p.origin_px) * p.px_to_image + p.image_offset;
    if !in_image(q) {
        return vec4<f32>(0.0, 0.0, 0.0, 1.0);
    }
    let raw = textureLoad(image_tex, texel(q), 0).r;
    var rgb = vec3<f32>(0.0);
    if !((p.flags & FLAG_PADDING) != 0u && raw == p.padding_value) {
        let v = bilinear(image_tex, q);
        // DICOM PS3.3 C.11.2.1.2.1 LINEAR, as imaging::WindowLevel::normalize.
        let c = p.window_center - 0.5;
        let w = max(p.window_width - 1.0, 1e-3);
        let t = clamp((v - c) / w + 0.5, 0.0, 1.0);
        rgb = colormap(p.image_colormap, t);
    }

    if (p.flags & FLAG_HEAT) != 0u {
        let h = bilinear(heat_tex, q);
        var t = (h - p.heat_min) / max(p.heat_max - p.heat_min, 1e-12);
        if (p.flags & FLAG_HEAT_SIGNED) != 0u {
            // Signed maps: |value| decides the threshold, the colour keeps the sign (0.5 = zero).
            let m = max(max(abs(p.heat_min), abs(p.heat_max)), 1e-12);
            let s = h / m;
            if abs(s) >= p.heat_threshold {
                rgb = mix(rgb, colormap(p.heat_colormap, 0.5 + 0.5 * s), p.heat_opacity);
            }
        } else if t >= p.heat_threshold {
            rgb = mix(rgb, colormap(p.heat_colormap, t), p.heat_opacity);
        }
    }

    if (p.flags & FLAG_SUPERPIXELS) != 0u {
        let here = label(superpixel_tex, q);
        if on_boundary(superpixel_tex, q, here) {
            rgb = mix(rgb, vec3<f32>(1.0, 1.0, 0.6), 0.7);
        }
    }

    var gt = vec2<f32>(0.0);
    var pred = vec2<f32>(0.0);
    if (p.flags & FLAG_GT) != 0u {
        gt = mask_layer(gt_tex, q);
    }
    if (p.flags & FLAG_PRED) != 0u {
        pred = mask_layer(pred_tex, q);
    }
    let alpha = max(gt.y, pred.y);
    if alpha > 0.0 {
        // GT green, prediction red, both yellow.
        let colour = vec3<f32>(step(0.5, pred.x), step(0.5, gt.x), 0.0);
        rgb = mix(rgb, colour, alpha);
    }
    return vec4<f32>(rgb, 1.0);
}
