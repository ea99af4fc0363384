//! The deterministic offline embedder (cargo feature `offline`, on by default): local use,
//! tests and the bench; a production build may leave it out.

use std::hash::{Hash, Hasher};

use async_trait::async_trait;

use super::{DIMENSIONS, Embedded, Embedder};
use crate::error::Result;

pub const OFFLINE_MODEL_ID: &str = "offline-embedder";

/// Deterministic, no network: hashed lowercase word unigrams, word bigrams and character
/// trigrams into 1024 buckets (signed by a second hash bit), L2-normalised. Texts sharing
/// words or word fragments are near in cosine distance; identical texts are identical vectors.
/// An optional `model_id` override lets tests simulate a model change.
pub struct OfflineEmbedder {
    model_id: String,
}

impl Default for OfflineEmbedder {
    fn default() -> Self {
        OfflineEmbedder {
            model_id: OFFLINE_MODEL_ID.into(),
        }
    }
}

impl OfflineEmbedder {
    pub fn with_model_id(model_id: impl Into<String>) -> Self {
        OfflineEmbedder {
            model_id: model_id.into(),
        }
    }
}

fn bucket(feature: &str) -> (usize, f32) {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    feature.hash(&mut h);
    let v = h.finish();
    #[allow(clippy::cast_possible_truncation)] // a remainder below DIMENSIONS (1024)
    let index = (v % DIMENSIONS as u64) as usize;
    (index, if v >> 63 == 0 { 1.0 } else { -1.0 })
}

/// The offline vector of `text` (pure; exposed for tests that need a query vector).
pub fn offline_vector(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; DIMENSIONS];
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut add = |f: &str, weight: f32| {
        let (i, sign) = bucket(f);
        v[i] += sign * weight;
    };
    for w in &words {
        add(&format!("w:{w}"), 1.0);
        let chars: Vec<char> = format!(" {w} ").chars().collect();
        for t in chars.windows(3) {
            add(&format!("c:{}", t.iter().collect::<String>()), 0.5);
        }
    }
    for pair in words.windows(2) {
        add(&format!("b:{} {}", pair[0], pair[1]), 1.0);
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    } else {
        // No word at all (punctuation only): a fixed unit vector, still valid for cosine.
        v[0] = 1.0;
    }
    v
}

#[async_trait]
impl Embedder for OfflineEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    async fn embed(&self, texts: &[String]) -> Result<Embedded> {
        Ok(Embedded {
            vectors: texts.iter().map(|t| offline_vector(t)).collect(),
            input_tokens: texts
                .iter()
                .map(|t| t.split_whitespace().count() as u64 + 1)
                .sum(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn offline_is_deterministic_normalised_and_lexical() {
        let a = offline_vector("Irrigate the maize field on Tuesday");
        assert_eq!(a.len(), DIMENSIONS);
        assert_eq!(a, offline_vector("Irrigate the maize field on Tuesday"));
        assert!((cos(&a, &a) - 1.0).abs() < 1e-5);
        let near = offline_vector("irrigate maize fields");
        let far = offline_vector("vaccinate the dairy herd");
        assert!(cos(&a, &near) > cos(&a, &far) + 0.2);
        let empty = offline_vector("!!!");
        assert!((cos(&empty, &empty) - 1.0).abs() < 1e-5);
    }
}
