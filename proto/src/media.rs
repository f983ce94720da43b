//! Images attached to reports (`yingji/v1/media/{device_id}/{report_id}`): raw bytes whose type
//! is found from their first bytes, never from anything the sender claims.

use crate::Limits;
use crate::error::{Code, Invalid};

/// The image types contract v1 accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    Jpeg,
    Png,
    Webp,
}

impl MediaType {
    /// The MIME type.
    pub fn content_type(self) -> &'static str {
        match self {
            MediaType::Jpeg => "image/jpeg",
            MediaType::Png => "image/png",
            MediaType::Webp => "image/webp",
        }
    }
}

/// Checks a media payload's size and finds its type from its magic bytes.
pub fn sniff(payload: &[u8], limits: &Limits) -> Result<MediaType, Invalid> {
    if payload.is_empty() {
        return Err(Invalid::new(Code::MediaEmpty, "media payload is empty"));
    }
    if payload.len() > limits.max_media_bytes {
        return Err(Invalid::new(
            Code::MediaTooLarge,
            format!("media is {} bytes; the limit is {}", payload.len(), limits.max_media_bytes),
        ));
    }
    if payload.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Ok(MediaType::Jpeg)
    } else if payload.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Ok(MediaType::Png)
    } else if payload.len() >= 12 && &payload[0..4] == b"RIFF" && &payload[8..12] == b"WEBP" {
        Ok(MediaType::Webp)
    } else {
        Err(Invalid::new(
            Code::MediaTypeUnsupported,
            "media is not a JPEG, PNG or WebP image (judged by its first bytes)",
        ))
    }
}
