//! Screenshots: the root window's pixels from `GetImage` (ZPixmap), turned into RGB with the root
//! visual's masks, optionally with the pointer drawn in from the XFIXES cursor image, scaled and
//! encoded as PNG or JPEG by the `image` crate.

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ImageEncoder, RgbImage};
use x11rb::connection::Connection;
use x11rb::protocol::xfixes::ConnectionExt as _;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat, ImageOrder};

use super::X11;
use crate::error::{DesktopError, DesktopResult};

/// A checked rectangle inside the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    /// Left edge.
    pub x: i16,
    /// Top edge.
    pub y: i16,
    /// Width.
    pub width: u16,
    /// Height.
    pub height: u16,
}

/// How the pixels of the screen are laid out in a `GetImage` reply.
#[derive(Debug, Clone, Copy)]
pub struct PixelLayout {
    bits_per_pixel: u8,
    scanline_pad: u8,
    msb_first: bool,
    masks: [u32; 3],
}

/// The encoding asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// PNG at a zlib level 1–9.
    Png(u8),
    /// JPEG at a quality 1–100.
    Jpeg(u8),
}

impl X11 {
    fn layout(&self) -> DesktopResult<PixelLayout> {
        let setup = self.conn.setup();
        let screen = setup.roots.iter().find(|s| s.root == self.root).ok_or_else(|| unsupported("no screen"))?;
        let depth = screen.root_depth;
        let format = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == depth)
            .ok_or_else(|| unsupported(&format!("no pixmap format for depth {depth}")))?;
        let visual = screen
            .allowed_depths
            .iter()
            .flat_map(|d| d.visuals.iter())
            .find(|v| v.visual_id == screen.root_visual)
            .ok_or_else(|| unsupported("root visual not listed"))?;
        if !matches!(format.bits_per_pixel, 16 | 24 | 32) || visual.red_mask == 0 {
            return Err(unsupported(&format!("{} bits per pixel without a true-color visual", format.bits_per_pixel)));
        }
        Ok(PixelLayout {
            bits_per_pixel: format.bits_per_pixel,
            scanline_pad: format.scanline_pad,
            msb_first: setup.image_byte_order == ImageOrder::MSB_FIRST,
            masks: [visual.red_mask, visual.green_mask, visual.blue_mask],
        })
    }

    /// The pixels of `rect` as RGB.
    pub fn capture(&self, rect: Rect) -> DesktopResult<RgbImage> {
        let layout = self.layout()?;
        let reply = self
            .conn
            .get_image(ImageFormat::Z_PIXMAP, self.root, rect.x, rect.y, rect.width, rect.height, !0)
            .map_err(DesktopError::x11("capture the screen"))?
            .reply()
            .map_err(DesktopError::x11("capture the screen"))?;
        to_rgb(&reply.data, u32::from(rect.width), u32::from(rect.height), layout)
            .ok_or_else(|| DesktopError::X11 { what: "capture the screen".into(), message: "short image reply".into() })
    }

    /// Draws the pointer into `image`, which shows the screen from `origin`.
    pub fn draw_cursor(&self, image: &mut RgbImage, origin: (i16, i16)) -> DesktopResult<()> {
        let cursor = self
            .conn
            .xfixes_get_cursor_image()
            .map_err(DesktopError::x11("read the cursor image"))?
            .reply()
            .map_err(DesktopError::x11("read the cursor image"))?;
        let left = i32::from(cursor.x) - i32::from(cursor.xhot) - i32::from(origin.0);
        let top = i32::from(cursor.y) - i32::from(cursor.yhot) - i32::from(origin.1);
        blend_argb(image, &cursor.cursor_image, u32::from(cursor.width), u32::from(cursor.height), (left, top));
        Ok(())
    }
}

fn unsupported(why: &str) -> DesktopError {
    DesktopError::X11 { what: "capture the screen".into(), message: format!("unsupported pixel format: {why}") }
}

/// Converts ZPixmap data to RGB; `None` when the data is shorter than the layout says.
pub fn to_rgb(data: &[u8], width: u32, height: u32, layout: PixelLayout) -> Option<RgbImage> {
    let bytes = usize::from(layout.bits_per_pixel / 8);
    let pad_bits = u32::from(layout.scanline_pad.max(8));
    let stride = usize::try_from((width * u32::from(layout.bits_per_pixel)).div_ceil(pad_bits) * pad_bits / 8).ok()?;
    let (width_us, height_us) = (usize::try_from(width).ok()?, usize::try_from(height).ok()?);
    if data.len() < stride * height_us {
        return None;
    }
    let channel = |pixel: u32, mask: u32| -> u8 {
        let shifted = (pixel & mask) >> mask.trailing_zeros();
        let max = mask >> mask.trailing_zeros();
        u8::try_from(if max == 255 { shifted } else { shifted * 255 / max.max(1) }).unwrap_or(u8::MAX)
    };
    let mut rgb = Vec::with_capacity(width_us * height_us * 3);
    for row in data.chunks(stride).take(height_us) {
        for px in row[..width_us * bytes].chunks_exact(bytes) {
            let pixel = match (bytes, layout.msb_first) {
                (4, false) => u32::from_le_bytes([px[0], px[1], px[2], px[3]]),
                (4, true) => u32::from_be_bytes([px[0], px[1], px[2], px[3]]),
                (3, false) => u32::from_le_bytes([px[0], px[1], px[2], 0]),
                (3, true) => u32::from_be_bytes([0, px[0], px[1], px[2]]),
                (_, false) => u32::from(u16::from_le_bytes([px[0], px[1]])),
                (_, true) => u32::from(u16::from_be_bytes([px[0], px[1]])),
            };
            rgb.extend([
                channel(pixel, layout.masks[0]),
                channel(pixel, layout.masks[1]),
                channel(pixel, layout.masks[2]),
            ]);
        }
    }
    RgbImage::from_raw(width, height, rgb)
}

/// Blends a premultiplied ARGB picture (the XFIXES cursor image) onto `image` at `at`.
pub fn blend_argb(image: &mut RgbImage, argb: &[u32], width: u32, height: u32, at: (i32, i32)) {
    for (index, &pixel) in argb.iter().enumerate().take((width * height) as usize) {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        let (x, y) = (at.0 + (index % width) as i32, at.1 + (index / width) as i32);
        let (Ok(x), Ok(y)) = (u32::try_from(x), u32::try_from(y)) else { continue };
        if x >= image.width() || y >= image.height() {
            continue;
        }
        let alpha = pixel >> 24;
        if alpha == 0 {
            continue;
        }
        let target = image.get_pixel_mut(x, y);
        for (channel, shift) in target.0.iter_mut().zip([16u32, 8, 0]) {
            let source = (pixel >> shift) & 0xff;
            let blended = source + u32::from(*channel) * (255 - alpha) / 255;
            *channel = u8::try_from(blended.min(255)).unwrap_or(u8::MAX);
        }
    }
}

/// Scales `image` by `scale` (each side at least one pixel); 1.0 keeps it.
pub fn scale(image: RgbImage, scale: f64) -> RgbImage {
    if (scale - 1.0).abs() < f64::EPSILON {
        return image;
    }
    let side = |n: u32| ((f64::from(n) * scale).round() as u32).max(1);
    image::imageops::resize(&image, side(image.width()), side(image.height()), image::imageops::FilterType::Triangle)
}

/// Encodes `image`.
pub fn encode(image: &RgbImage, encoding: Encoding) -> DesktopResult<Vec<u8>> {
    let mut out = Vec::new();
    let (width, height) = image.dimensions();
    let result = match encoding {
        Encoding::Png(level) => {
            let compression = if level <= 1 { CompressionType::Fast } else { CompressionType::Level(level) };
            PngEncoder::new_with_quality(&mut out, compression, FilterType::Adaptive).write_image(
                image.as_raw(),
                width,
                height,
                image::ExtendedColorType::Rgb8,
            )
        }
        Encoding::Jpeg(quality) => JpegEncoder::new_with_quality(&mut out, quality).write_image(
            image.as_raw(),
            width,
            height,
            image::ExtendedColorType::Rgb8,
        ),
    };
    result.map_err(|error| DesktopError::X11 { what: "encode the screenshot".into(), message: error.to_string() })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bgrx() -> PixelLayout {
        PixelLayout { bits_per_pixel: 32, scanline_pad: 32, msb_first: false, masks: [0xff0000, 0xff00, 0xff] }
    }

    #[test]
    fn little_endian_32_bit_pixels_become_rgb() {
        // Two pixels: pure red, then (1, 2, 3), as BGRX bytes.
        let data = [0, 0, 255, 0, 3, 2, 1, 0];
        let image = to_rgb(&data, 2, 1, bgrx()).unwrap();
        assert_eq!(image.as_raw(), &vec![255, 0, 0, 1, 2, 3]);
        assert!(to_rgb(&data, 2, 2, bgrx()).is_none(), "short data is refused");
    }

    #[test]
    fn sixteen_bit_pixels_are_widened_and_rows_are_padded() {
        let layout =
            PixelLayout { bits_per_pixel: 16, scanline_pad: 32, msb_first: false, masks: [0xf800, 0x07e0, 0x1f] };
        // One white pixel per row, each row padded to 4 bytes.
        let data = [0xff, 0xff, 0, 0, 0x00, 0xf8, 0, 0];
        let image = to_rgb(&data, 1, 2, layout).unwrap();
        assert_eq!(image.as_raw(), &vec![255, 255, 255, 255, 0, 0]);
    }

    #[test]
    fn the_cursor_is_blended_where_it_is_opaque_and_clipped_at_the_edges() {
        let mut image = RgbImage::from_pixel(3, 3, image::Rgb([10, 10, 10]));
        // 2x2 cursor: opaque white, transparent, half-transparent black, opaque red.
        let cursor = [0xffff_ffff, 0x0000_0000, 0x8000_0000, 0xffff_0000];
        blend_argb(&mut image, &cursor, 2, 2, (2, 2));
        assert_eq!(image.get_pixel(2, 2).0, [255, 255, 255]);
        assert_eq!(image.get_pixel(1, 1).0, [10, 10, 10]);
        blend_argb(&mut image, &cursor, 2, 2, (0, 0));
        assert_eq!(image.get_pixel(1, 0).0, [10, 10, 10]);
        assert_eq!(image.get_pixel(0, 1).0, [4, 4, 4]);
        assert_eq!(image.get_pixel(1, 1).0, [255, 0, 0]);
    }

    #[test]
    fn encodings_produce_their_magic_bytes_and_scaling_keeps_a_pixel() {
        let image = RgbImage::from_pixel(8, 6, image::Rgb([200, 30, 30]));
        let png = encode(&image, Encoding::Png(1)).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
        assert_eq!(&encode(&image, Encoding::Png(9)).unwrap()[..4], b"\x89PNG");
        assert_eq!(&encode(&image, Encoding::Jpeg(60)).unwrap()[..2], b"\xff\xd8");
        assert_eq!(scale(image.clone(), 0.5).dimensions(), (4, 3));
        assert_eq!(scale(image, 0.01).dimensions(), (1, 1));
    }
}
