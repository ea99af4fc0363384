//! Money and quantities as a farmer writes them, for the offline model: "18000 naira",
//! "N18,000", "₦18,000", "18k naira", "NGN 2,500.50". Amounts are integer kobo, never float.
//!
//! A number is an amount when a currency marks it: a `₦`, `N` or `NGN` written before it (joined
//! or as the word before), or `naira` / `ngn` as the word after. An unmarked number is a
//! quantity ("2 bags"), except where the sentence leaves no doubt ([`price_kobo`]'s fallbacks).

/// Kobo in one naira.
const KOBO_PER_NAIRA: i64 = 100;

/// The kobo a bare written number stands for, as naira: "18000", "18,000", "2,500.50", "18k",
/// "1.5k", "2m". `None` for anything else (no digits, three decimals, overflow).
pub fn naira_to_kobo(written: &str) -> Option<i64> {
    let s = written.trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
    let (digits, multiplier) = match s.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1_000),
        None => match s.strip_suffix(['m', 'M']) {
            Some(d) => (d, 1_000_000),
            None => (s, 1),
        },
    };
    let digits = digits.replace(',', "");
    let (whole, frac) = digits.split_once('.').unwrap_or((&digits, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 6
    {
        return None;
    }
    let unit = multiplier * KOBO_PER_NAIRA;
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut kobo = whole.checked_mul(unit)?;
    if !frac.is_empty() {
        let scale = 10_i64.checked_pow(u32::try_from(frac.len()).ok()?)?;
        let frac_kobo = frac.parse::<i64>().ok()?.checked_mul(unit)?;
        // A fraction finer than a kobo is not money anyone wrote down.
        if frac_kobo % scale != 0 {
            return None;
        }
        kobo = kobo.checked_add(frac_kobo / scale)?;
    }
    Some(kobo)
}

/// The number in a word with a currency sign joined to it ("₦18,000", "n18,000", "ngn2500").
fn signed_amount(word: &str) -> Option<i64> {
    let rest = word
        .strip_prefix('₦')
        .or_else(|| word.strip_prefix("ngn"))
        .or_else(|| word.strip_prefix('n'))?;
    rest.starts_with(|c: char| c.is_ascii_digit())
        .then(|| naira_to_kobo(rest))
        .flatten()
}

fn is_currency_word(word: &str) -> bool {
    matches!(
        word.trim_end_matches(['.', ',', ';', ':', '!', '?', ')']),
        "naira" | "ngn"
    )
}

/// The amount `words[i]` stands for when a currency marks it. `words` are lower-case.
pub fn marked_amount(words: &[&str], i: usize) -> Option<i64> {
    let word = words.get(i)?;
    if let Some(kobo) = signed_amount(word) {
        return Some(kobo);
    }
    let before = i.checked_sub(1).and_then(|j| words.get(j));
    let after = words.get(i + 1);
    let marked = before.is_some_and(|b| matches!(*b, "₦" | "n" | "ngn"))
        || after.is_some_and(|a| is_currency_word(a));
    marked.then(|| naira_to_kobo(word)).flatten()
}

/// The price in a clause whose verb is at `verb` (sold, bought, paid, spent): the first amount
/// a currency marks after the verb; else the number right after "for"; else, for `paid` and
/// `spent` (whose object is money), the first number after the verb.
pub fn price_kobo(words: &[&str], verb: usize) -> Option<i64> {
    let after_verb = verb + 1..words.len();
    if let Some(kobo) = after_verb.clone().find_map(|i| marked_amount(words, i)) {
        return Some(kobo);
    }
    let for_at = after_verb.clone().find(|&i| words[i] == "for");
    if let Some(kobo) = for_at
        .and_then(|f| words.get(f + 1))
        .and_then(|w| naira_to_kobo(w))
    {
        return Some(kobo);
    }
    if matches!(words.get(verb), Some(&"paid") | Some(&"spent")) {
        return after_verb.into_iter().find_map(|i| naira_to_kobo(words[i]));
    }
    None
}

/// Whether `words[i..]` is only an amount ("18000 naira", "₦18,000"): a description must not
/// be the price.
pub fn is_only_amount(words: &[&str]) -> bool {
    match words {
        [one] => signed_amount(one).is_some() || naira_to_kobo(one).is_some(),
        [a, b] => {
            (naira_to_kobo(a).is_some() && is_currency_word(b))
                || (matches!(*a, "₦" | "n" | "ngn") && naira_to_kobo(b).is_some())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_naira_become_integer_kobo() {
        let cases: &[(&str, Option<i64>)] = &[
            ("18000", Some(1_800_000)),
            ("18,000", Some(1_800_000)),
            ("45,000.", Some(4_500_000)),
            ("2,500.50", Some(250_050)),
            ("0.5", Some(50)),
            ("18k", Some(1_800_000)),
            ("1.5k", Some(150_000)),
            ("2m", Some(200_000_000)),
            ("12.345", None),
            ("bags", None),
            ("", None),
            ("1.2.3", None),
            ("99999999999999999999", None),
        ];
        for (written, kobo) in cases {
            assert_eq!(naira_to_kobo(written), *kobo, "{written:?}");
        }
    }

    #[test]
    fn a_currency_marks_an_amount_and_a_quantity_stays_a_quantity() {
        // (clause, index of the word, amount it marks)
        let cases: &[(&str, usize, Option<i64>)] = &[
            ("for 18000 naira", 1, Some(1_800_000)),
            ("for n18,000", 1, Some(1_800_000)),
            ("for ₦18,000", 1, Some(1_800_000)),
            ("for ₦ 18,000", 2, Some(1_800_000)),
            ("for ngn 2,500.50", 2, Some(250_050)),
            ("for 18k naira.", 1, Some(1_800_000)),
            ("bought 2 bags", 1, None),
            ("sold 20 crates", 1, None),
            ("3 birds died", 0, None),
            ("for nothing", 1, None),
        ];
        for (clause, i, kobo) in cases {
            let words: Vec<&str> = clause.split_whitespace().collect();
            assert_eq!(marked_amount(&words, *i), *kobo, "{clause:?}");
        }
    }

    #[test]
    fn the_price_of_a_clause_is_its_amount_not_its_quantity() {
        let cases: &[(&str, Option<i64>)] = &[
            (
                "bought 2 bags of layer mash for 18000 naira",
                Some(1_800_000),
            ),
            ("bought 2 bags of layer mash for n18,000", Some(1_800_000)),
            ("bought 2 bags of layer mash for ₦18,000", Some(1_800_000)),
            ("bought 2 bags of layer mash for 18k naira", Some(1_800_000)),
            ("bought 2 bags of layer mash for 18000", Some(1_800_000)),
            ("bought 2 bags of layer mash", None),
            ("sold 20 crates of eggs for 45,000 naira", Some(4_500_000)),
            ("sold 20 crates of eggs for ₦45k", Some(4_500_000)),
            ("paid 12,500 for vaccines", Some(1_250_000)),
            ("spent ₦3,000 on diesel", Some(300_000)),
            ("paid the vet 5000 naira", Some(500_000)),
        ];
        for (clause, kobo) in cases {
            let words: Vec<&str> = clause.split_whitespace().collect();
            assert_eq!(price_kobo(&words, 0), *kobo, "{clause:?}");
        }
    }

    #[test]
    fn only_an_amount_is_recognised() {
        for (text, only) in [
            ("18000 naira", true),
            ("₦18,000", true),
            ("n 18,000", true),
            ("vaccines", false),
            ("2 bags of mash", false),
        ] {
            let words: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(is_only_amount(&words), only, "{text:?}");
        }
    }
}
