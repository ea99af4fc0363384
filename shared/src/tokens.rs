//! The one tokeniser: [`split`] cuts text into tokens for the offline chat model's clause
//! parser (`model::offline::parse`, its token estimate) and the offline fact extractor
//! (`memory::extract`).
//!
//! The two read text differently, so [`split`] takes a [`Split`] rather than forcing one rule
//! on both: merging them would change what each produces. The model needs a token to keep its
//! punctuation ("45,000", "₦12,500", "350g", "18k" are amounts, "naira." ends one), the
//! extractor needs bare words to match its sentence shapes ("vet", "don't", "day-old").
//! Case is left as written: the model lowercases (ASCII) the whole clause before splitting
//! because it also searches the clause by substring; the extractor lowercases (Unicode) each
//! word after splitting, which is not the same as lowercasing first (the lowercase of `İ` ends
//! in a combining mark, which [`Split::Words`] would cut at).

/// Where [`split`] cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// At whitespace only; a token keeps its punctuation (the offline model).
    Whitespace,
    /// At every character that is not a letter, a digit, an apostrophe or a hyphen; the
    /// punctuation is dropped, and so are empty pieces (the extractor).
    Words,
}

/// The tokens of `text`, in order, as slices of it (never empty).
pub fn split(text: &str, how: Split) -> Vec<&str> {
    match how {
        Split::Whitespace => text.split_whitespace().collect(),
        Split::Words => text
            .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-'))
            .filter(|w| !w.is_empty())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_splits() {
        let cases: [(&str, Split, &[&str]); 8] = [
            ("", Split::Whitespace, &[]),
            ("", Split::Words, &[]),
            (
                " sold 20 crates for ₦45,000 naira. ",
                Split::Whitespace,
                &["sold", "20", "crates", "for", "₦45,000", "naira."],
            ),
            (
                "sold 20 crates for ₦45,000 naira.",
                Split::Words,
                &["sold", "20", "crates", "for", "45", "000", "naira"],
            ),
            (
                "we don't feed day-old chicks",
                Split::Words,
                &["we", "don't", "feed", "day-old", "chicks"],
            ),
            (
                "Pond 3,\tthe\nnursery!",
                Split::Whitespace,
                &["Pond", "3,", "the", "nursery!"],
            ),
            (
                "Pond 3,\tthe\nnursery!",
                Split::Words,
                &["Pond", "3", "the", "nursery"],
            ),
            (
                "Our vet is Dr Adé",
                Split::Words,
                &["Our", "vet", "is", "Dr", "Adé"],
            ),
        ];
        for (text, how, want) in cases {
            assert_eq!(split(text, how), want, "{text:?} {how:?}");
        }
    }
}
