//! Checks of request values against the protocol and the screen: coordinates on the screen, button and
//! wheel names, counts, regions and screenshot options. Each error names the field and what to send.

use nullspace_types::desktop_api::{CompressedScreenshotRequest, Region};

use crate::error::{DesktopError, DesktopResult};
use crate::x11::input::Button;
use crate::x11::screenshot::{Encoding, Rect};

/// Most clicks in one request.
const MAX_CLICKS: i64 = 10;
/// Most wheel steps in one request.
const MAX_SCROLL: i64 = 1000;

/// A checked compressed screenshot request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shot {
    /// What to capture.
    pub rect: Rect,
    /// How to encode it.
    pub encoding: Encoding,
    /// Factor applied to both sides.
    pub scale: f64,
    /// Draw the pointer.
    pub cursor: bool,
}

/// A point on the screen.
pub fn point(x: i64, y: i64, screen: (u16, u16)) -> DesktopResult<(i16, i16)> {
    let inside = |v: i64, side: u16| (0..i64::from(side)).contains(&v);
    if !inside(x, screen.0) || !inside(y, screen.1) {
        return Err(DesktopError::invalid(format!(
            "point ({x}, {y}) is outside the screen; x must be 0-{} and y 0-{}",
            screen.0.saturating_sub(1),
            screen.1.saturating_sub(1)
        )));
    }
    Ok((i16::try_from(x).unwrap_or(i16::MAX), i16::try_from(y).unwrap_or(i16::MAX)))
}

/// `x` and `y` given together or not at all.
pub fn optional_point(x: Option<i64>, y: Option<i64>, screen: (u16, u16)) -> DesktopResult<Option<(i16, i16)>> {
    match (x, y) {
        (None, None) => Ok(None),
        (Some(x), Some(y)) => point(x, y, screen).map(Some),
        _ => Err(DesktopError::invalid("x and y must both be given or both be omitted")),
    }
}

/// A button name (`left` when absent).
pub fn button(name: Option<&str>) -> DesktopResult<Button> {
    match name.map(str::trim).map(str::to_lowercase).as_deref() {
        None | Some("") | Some("left") => Ok(1),
        Some("middle") => Ok(2),
        Some("right") => Ok(3),
        Some(other) => Err(DesktopError::invalid(format!("unknown button {other:?}; use left, right or middle"))),
    }
}

/// Clicks in a row (1 when absent).
pub fn clicks(count: Option<i64>) -> DesktopResult<u8> {
    match count.unwrap_or(1) {
        n @ 1..=MAX_CLICKS => Ok(u8::try_from(n).unwrap_or(1)),
        n => Err(DesktopError::invalid(format!("clicks {n} is out of range; use 1-{MAX_CLICKS}"))),
    }
}

/// The wheel button of a scroll direction.
pub fn wheel(direction: &str) -> DesktopResult<Button> {
    match direction.trim().to_lowercase().as_str() {
        "up" => Ok(4),
        "down" => Ok(5),
        "left" => Ok(6),
        "right" => Ok(7),
        other => Err(DesktopError::invalid(format!("unknown direction {other:?}; use up, down, left or right"))),
    }
}

/// Wheel steps (3 when absent).
pub fn scroll_amount(amount: Option<i64>) -> DesktopResult<u32> {
    match amount.unwrap_or(3) {
        n @ 1..=MAX_SCROLL => Ok(u32::try_from(n).unwrap_or(3)),
        n => Err(DesktopError::invalid(format!("amount {n} is out of range; use 1-{MAX_SCROLL}"))),
    }
}

/// A region inside the screen.
pub fn region(region: Region, screen: (u16, u16)) -> DesktopResult<Rect> {
    let Region { x, y, width, height } = region;
    if width <= 0 || height <= 0 {
        return Err(DesktopError::invalid(format!(
            "region {width}x{height} is empty; width and height must be positive"
        )));
    }
    if x < 0 || y < 0 || x + width > i64::from(screen.0) || y + height > i64::from(screen.1) {
        return Err(DesktopError::invalid(format!(
            "region {width}x{height} at ({x}, {y}) does not fit the {}x{} screen",
            screen.0, screen.1
        )));
    }
    let narrow = |v: i64| i16::try_from(v).unwrap_or(i16::MAX);
    let side = |v: i64| u16::try_from(v).unwrap_or(u16::MAX);
    Ok(Rect { x: narrow(x), y: narrow(y), width: side(width), height: side(height) })
}

/// The whole screen.
pub fn full(screen: (u16, u16)) -> Rect {
    Rect { x: 0, y: 0, width: screen.0, height: screen.1 }
}

/// A compressed screenshot request.
pub fn shot(request: &CompressedScreenshotRequest, screen: (u16, u16)) -> DesktopResult<Shot> {
    let quality = u8::try_from(request.quality)
        .ok()
        .filter(|q| (1..=100).contains(q))
        .ok_or_else(|| DesktopError::invalid(format!("quality {} is out of range; use 1-100", request.quality)))?;
    let encoding = match request.format.trim().to_lowercase().as_str() {
        "png" => Encoding::Png(png_level(quality)),
        "jpeg" | "jpg" => Encoding::Jpeg(quality),
        "webp" => return Err(DesktopError::invalid("format webp is not supported here; use png or jpeg")),
        other => return Err(DesktopError::invalid(format!("unknown format {other:?}; use png or jpeg"))),
    };
    if !(request.scale > 0.0 && request.scale <= 2.0) {
        return Err(DesktopError::invalid(format!(
            "scale {} is out of range; use a number above 0 and at most 2",
            request.scale
        )));
    }
    let rect = match request.region {
        Some(r) => region(r, screen)?,
        None => full(screen),
    };
    Ok(Shot { rect, encoding, scale: request.scale, cursor: request.show_cursor })
}

/// The zlib level for a PNG of `quality`: 100 encodes fastest, lower qualities spend more time for a
/// smaller file (PNG stays lossless).
pub fn png_level(quality: u8) -> u8 {
    let effort = u32::from(100 - quality.clamp(1, 100));
    u8::try_from(1 + effort * 8 / 99).unwrap_or(9)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCREEN: (u16, u16) = (1920, 1080);

    #[test]
    fn points_must_be_on_the_screen() {
        assert_eq!(point(0, 0, SCREEN).unwrap(), (0, 0));
        assert_eq!(point(1919, 1079, SCREEN).unwrap(), (1919, 1079));
        let error = point(1920, 5, SCREEN).unwrap_err().message();
        assert!(error.contains("outside the screen") && error.contains("0-1919"), "{error}");
        assert!(point(-1, 5, SCREEN).is_err());
        assert!(optional_point(Some(1), None, SCREEN).unwrap_err().message().contains("both"));
        assert_eq!(optional_point(None, None, SCREEN).unwrap(), None);
    }

    #[test]
    fn buttons_wheels_and_counts_are_named() {
        assert_eq!((button(None).unwrap(), button(Some("Right")).unwrap(), button(Some("middle")).unwrap()), (1, 3, 2));
        assert!(button(Some("fourth")).unwrap_err().message().contains("left, right or middle"));
        assert_eq!([wheel("up"), wheel("down"), wheel("left"), wheel("right")].map(Result::unwrap), [4, 5, 6, 7]);
        assert!(wheel("sideways").is_err());
        assert_eq!((clicks(None).unwrap(), clicks(Some(2)).unwrap()), (1, 2));
        assert!(clicks(Some(0)).is_err() && clicks(Some(11)).is_err());
        assert_eq!(scroll_amount(None).unwrap(), 3);
        assert!(scroll_amount(Some(0)).is_err());
    }

    #[test]
    fn regions_must_fit_the_screen() {
        let rect = region(Region { x: 0, y: 0, width: 320, height: 240 }, SCREEN).unwrap();
        assert_eq!(rect, Rect { x: 0, y: 0, width: 320, height: 240 });
        assert!(region(Region { x: 1800, y: 0, width: 200, height: 10 }, SCREEN)
            .unwrap_err()
            .message()
            .contains("does not fit"));
        assert!(region(Region { x: 0, y: 0, width: 0, height: 10 }, SCREEN).unwrap_err().message().contains("empty"));
    }

    #[test]
    fn compressed_shots_check_format_quality_and_scale() {
        let request = |format: &str, quality: i64, scale: f64| CompressedScreenshotRequest {
            format: format.into(),
            quality,
            scale,
            show_cursor: true,
            region: None,
        };
        let jpeg = shot(&request("jpeg", 60, 0.5), SCREEN).unwrap();
        assert_eq!((jpeg.encoding, jpeg.rect, jpeg.cursor), (Encoding::Jpeg(60), full(SCREEN), true));
        assert_eq!(shot(&request("PNG", 100, 1.0), SCREEN).unwrap().encoding, Encoding::Png(1));
        assert!(shot(&request("webp", 80, 1.0), SCREEN).unwrap_err().message().contains("webp is not supported"));
        assert!(shot(&request("gif", 80, 1.0), SCREEN).is_err());
        assert!(shot(&request("png", 0, 1.0), SCREEN).unwrap_err().message().contains("quality"));
        assert!(shot(&request("png", 80, 0.0), SCREEN).unwrap_err().message().contains("scale"));
        assert!(shot(&request("png", 80, f64::NAN), SCREEN).is_err());
        assert_eq!((png_level(100), png_level(1)), (1, 9));
    }
}
