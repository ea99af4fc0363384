//! The pure text side: chunking, content hashes, pgvector's text form.

use sha2::{Digest, Sha256};

use super::{CHUNK_CHARS, CHUNK_OVERLAP};

/// Splits `text` into overlapping chunks (see the module doc). Pure.
pub fn chunk(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len();
    let mut out = Vec::new();
    let mut start = 0;
    while start < len {
        let mut end = (start + CHUNK_CHARS).min(len);
        if end < len {
            let floor = start + CHUNK_CHARS / 2;
            if let Some(ws) = (floor..end).rev().find(|&i| chars[i].is_whitespace()) {
                end = ws;
            }
        }
        let piece: String = chars[start..end].iter().collect();
        let piece = piece.trim();
        if !piece.is_empty() {
            out.push(piece.to_string());
        }
        if end >= len {
            break;
        }
        // Next window starts OVERLAP before the cut, moved forward to a word start.
        let mut next = end.saturating_sub(CHUNK_OVERLAP).max(start + 1);
        if let Some(ws) = (next..end).find(|&i| chars[i].is_whitespace()) {
            next = ws + 1;
        }
        start = next;
    }
    out
}

pub fn content_hash(content: &str) -> String {
    hex::encode(Sha256::digest(content.as_bytes()))
}

/// pgvector's text form, bound as TEXT and cast with `::vector` in SQL.
pub fn vector_text(v: &[f32]) -> String {
    let mut s = String::with_capacity(v.len() * 12);
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&x.to_string());
    }
    s.push(']');
    s
}
