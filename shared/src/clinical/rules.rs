//! The rules, clause by clause. Each clause is read once into a [`View`] (which cues it has and
//! where); each rule is a few lines over views. One job, kept whole past 400 lines: the rules
//! read as one list, in the order they are checked.

use std::sync::LazyLock;

use regex::Regex;

use super::{
    Rule,
    clauses::{self, Clause},
    concerns::*,
    cues::*,
    mentions::{self, Mention},
    vocabulary::{Class, Prohibited, Rx},
};

/// "don't forget to give", "never stop giving": a negation that is not a prohibition.
static NOT_A_PROHIBITION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\S+(?:\s+not)?\s+(?:\w+\s+)?(?:forget|hesitate|fail|fails|failed|disappoints?|lets?|delay|miss|wait|panic|worry|be afraid|stop|neglect|skip)\b")
        .expect("static pattern")
});

/// A negation just before a cue: "never skip the vet", "don't ignore the withdrawal".
static NEGATED_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:do not|don['’]?t|dont|never|must not|mustn['’]?t|should not|shouldn['’]?t|cannot|can['’]?t|not|no one should|nobody should|avoid)\s+(?:\w+\s+){0,2}$")
        .expect("static pattern")
});

/// A clause that points back at the medicine named before ("dissolve four in the drinker").
static REFERS_BACK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:it|them|this|that|some|one|two|three|four|five|the same|the drug|the medicine|the powder)\b")
        .expect("static pattern")
});

/// Supplements and vaccines counted in tablets or sachets are not medicines to dose.
static SUPPLEMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:vitamins?|multivitamins?|glucose|electrolytes?|probiotics?|calcium|oyster shell|vaccines?|ors|oral rehydration|salt|sugar|lime|charcoal|minerals?|premix|iodine|disinfectant)\b")
        .expect("static pattern")
});

fn first(re: &Regex, text: &str) -> Option<usize> {
    re.find(text).map(|m| m.start())
}

/// What one clause says, read once.
struct View<'a> {
    clause: Clause<'a>,
    mentions: Vec<Mention>,
    imperative: bool,
    advice: bool,
    admin: bool,
    dose: bool,
    nonadvice: bool,
    info: bool,
    ban: bool,
    danger: bool,
    no_effect: bool,
    prohibitions: Vec<usize>,
    ask: Option<usize>,
    authority: bool,
    pronoun: bool,
    dismissed: bool,
    cancelled: bool,
}

impl<'a> View<'a> {
    fn new(clause: Clause<'a>, all: &[Mention]) -> View<'a> {
        let t = clause.text;
        let end = clause.start + t.len();
        let mentions = all
            .iter()
            .filter(|m| m.start >= clause.start && m.end <= end)
            .map(|m| Mention {
                start: m.start - clause.start,
                end: m.end - clause.start,
                ..*m
            })
            .collect();
        let imperative = IMPERATIVE.is_match(t);
        let advice = ADVICE.is_match(t);
        let prohibitions = NEG_ACT
            .find_iter(t)
            .filter(|m| {
                !NOT_A_PROHIBITION.is_match(m.as_str())
                    && !t[..m.start()].to_lowercase().ends_with("to ")
            })
            .map(|m| m.start())
            .collect();
        let dismissed = DISMISS
            .find_iter(t)
            .any(|m| !NEGATED_BEFORE.is_match(&t[..m.start()]));
        View {
            clause,
            mentions,
            imperative,
            advice,
            admin: ADMIN.is_match(t),
            dose: DOSE.is_match(t),
            nonadvice: (RECORD.is_match(t) || (INFO.is_match(t) && !DOSE.is_match(t)))
                && !imperative
                && !advice,
            info: INFO.is_match(t) && !imperative && !advice && !DOSE.is_match(t),
            ban: BAN.is_match(t),
            danger: DANGER.is_match(t),
            no_effect: NO_EFFECT.is_match(t) && !imperative,
            prohibitions,
            ask: first(&DEFER_ASK, t),
            authority: DEFER_AUTHORITY.is_match(t),
            pronoun: DEFER_PRONOUN.is_match(t),
            dismissed,
            cancelled: CANCEL.is_match(t) || DISMISS_WEAK.is_match(t),
        }
    }

    /// The clause forbids what is named at `pos` ("never use X", "no X", "X is banned").
    fn forbids(&self, pos: usize) -> bool {
        self.ban
            || self.no_effect
            || self.prohibitions.iter().any(|&p| p < pos)
            || NEG_BEFORE.is_match(&self.clause.text[..pos])
    }

    /// Advice to act (not a record, not history).
    fn advises(&self) -> bool {
        !self.nonadvice && (self.admin || self.dose || self.advice || self.imperative)
    }
}

/// "Only your vet can decide that": a sentence that hands what came before to a vet.
static HANDS_BACK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:but |and |so )?only\b|\b(?:decide|prescribe|choose)\b")
        .expect("static pattern")
});

/// The sentence sends the farmer to a vet for what is named at `pos` of clause `i`; `next`
/// is the sentence after it.
fn deferred(views: &[View<'_>], i: usize, pos: usize, names_vet: bool, next: &[View<'_>]) -> bool {
    let v = &views[i];
    if v.dismissed || v.cancelled || views.iter().any(|w| w.dismissed) {
        return false;
    }
    let hands_back =
        |w: &View<'_>| w.authority && !w.cancelled && !w.dismissed && w.mentions.is_empty();
    v.authority
        || v.ask.is_some_and(|a| a < pos)
        || (names_vet && v.pronoun)
        || views[i + 1..].iter().any(hands_back)
        || next
            .first()
            .is_some_and(|w| hands_back(w) && HANDS_BACK.is_match(w.clause.text))
}

/// A product for one species given to another ("the cattle pour-on on the goats").
fn species_change(t: &str) -> bool {
    const PRODUCT_WORDS: &[&str] = &[
        "product",
        "products",
        "dewormer",
        "wormer",
        "medicine",
        "drug",
        "dose",
        "dosage",
        "pour-on",
        "pour",
        "drench",
        "bolus",
        "injection",
        "tablets",
        "tablet",
        "formulation",
        "version",
        "antibiotic",
        "spray",
        "dip",
        "wormer",
        "powder",
    ];
    const FOR: &[&str] = &[
        "for",
        "labelled",
        "labeled",
        "meant",
        "made",
        "registered",
        "approved",
    ];
    let words: Vec<String> = t
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let group = |w: &str| {
        SPECIES
            .iter()
            .find(|(_, names)| names.contains(&w))
            .map(|(g, _)| *g)
    };
    let mut groups = Vec::new();
    let mut attached = None;
    for (i, w) in words.iter().enumerate() {
        let Some(g) = group(w) else { continue };
        if !groups.contains(&g) {
            groups.push(g);
        }
        let before = i.checked_sub(1).map(|j| words[j].as_str());
        let after = words[i + 1..]
            .iter()
            .take(2)
            .any(|n| PRODUCT_WORDS.contains(&n.as_str()));
        if after
            || before.is_some_and(|b| FOR.contains(&b))
            || words.get(i + 1).is_some_and(|n| n == "s")
        {
            attached.get_or_insert(g);
        }
    }
    attached.is_some() && groups.len() >= 2
}

/// The clause keeps to the withdrawal ("wait for the withdrawal", not "don't need to wait for
/// the withdrawal").
fn keeps_withdrawal(t: &str) -> bool {
    WITHDRAWAL_KEPT
        .find_iter(t)
        .any(|m| !NEGATED_BEFORE.is_match(&t[..m.start()]))
}

/// Some use of a market verb in `t` is not under a prohibition ("eat them, just don't sell").
fn market_advised(t: &str) -> bool {
    let negs: Vec<(usize, usize)> = NEG_MARKET
        .find_iter(t)
        .map(|m| (m.start(), m.end()))
        .collect();
    MARKET
        .find_iter(t)
        .any(|m| !negs.iter().any(|&(a, b)| a <= m.start() && m.end() <= b))
}

/// A rule that fired: on which clause, and for the prohibited-substance rules the substance
/// that made it fire (its prohibition is what the violation cites).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fired<'a> {
    pub rule: Rule,
    pub span: &'a str,
    pub substance: Option<Mention>,
}

/// Every rule that fires on `text`, with the clause it fired on.
pub fn evaluate(text: &str) -> Vec<Fired<'_>> {
    let all = mentions::find(text);
    let names_vet = DEFER_ASK.is_match(text) || DEFER_AUTHORITY.is_match(text);
    let treated = TREATED.is_match(text) || all.iter().any(|m| !m.class.is_pesticide());
    let withdrawal_over = keeps_withdrawal(text);
    let text_medicine = MEDICINE_WORD.is_match(text) || !all.is_empty();
    let mut fired = Vec::new();
    // Mentions of the sentence before, for "Buy tylosin. Give 1 g per litre." (with whether
    // that sentence deferred them to a vet).
    let mut previous: Vec<(Mention, bool)> = Vec::new();
    let sentences = clauses::sentences(text);
    let all_views: Vec<Vec<View<'_>>> = sentences
        .iter()
        .map(|s| s.clauses.iter().map(|c| View::new(*c, &all)).collect())
        .collect();
    let none: Vec<View<'_>> = Vec::new();
    for (si, sentence) in sentences.iter().enumerate() {
        let views = &all_views[si];
        let next = all_views.get(si + 1).unwrap_or(&none);
        let sentence_ban = views.iter().any(|v| v.ban);
        let sentence_medicine =
            MEDICINE_WORD.is_match(sentence.text) || !views.iter().all(|v| v.mentions.is_empty());
        let mut current: Vec<(Mention, bool)> = Vec::new();
        for (i, v) in views.iter().enumerate() {
            let span = v.clause.text;
            let t = span;
            let mut hit = |rule: Rule, substance: Option<Mention>| {
                fired.push(Fired {
                    rule,
                    span,
                    substance,
                })
            };
            let mut mentions: Vec<(Mention, bool)> = v
                .mentions
                .iter()
                .map(|m| (*m, deferred(views, i, m.start, names_vet, next)))
                .collect();
            let refers_back =
                (v.dose || (v.admin && REFERS_BACK.is_match(t))) && !keeps_withdrawal(t);
            if mentions.is_empty() && refers_back && (v.imperative || v.advice) {
                mentions = previous
                    .iter()
                    .map(|(m, d)| {
                        (
                            Mention {
                                start: 0,
                                end: 0,
                                ..*m
                            },
                            *d || deferred(views, i, 0, names_vet, next),
                        )
                    })
                    .collect();
            }
            for &(m, is_deferred) in &mentions {
                let forbidden = sentence_ban || v.forbids(m.start);
                current.push((m, is_deferred || forbidden));
                if m.class.is_pesticide() {
                    let near = ON_ANIMAL.is_match(t) || ON_ANIMAL.is_match(sentence.text);
                    let refused = forbidden
                        || v.danger
                        || !v.prohibitions.is_empty()
                        || PROTECT.is_match(t)
                        || (v.nonadvice && !v.imperative);
                    let labelled = !m.banned() && LABEL_OK.is_match(sentence.text);
                    let off_label = m.class != Class::Pyrethroid
                        || CROP_PRODUCT.is_match(sentence.text)
                        || EXTRALABEL.is_match(t);
                    if near && !refused && !labelled && off_label {
                        hit(Rule::PesticideOnAnimals, None);
                    }
                    continue;
                }
                if m.banned() {
                    let later_refusal = views[i + 1..].iter().any(|w| {
                        w.mentions.is_empty() && (!w.prohibitions.is_empty() || w.ban || w.danger)
                    });
                    let refused = forbidden
                        || v.danger
                        || !v.prohibitions.is_empty()
                        || later_refusal
                        || v.info;
                    if !refused {
                        hit(Rule::ProhibitedSubstance, Some(m));
                    }
                    continue;
                }
                // "After the antibiotic you can sell the eggs": the advice is the sale.
                let about_sale = market_advised(t) && !v.admin && !v.dose;
                if forbidden || about_sale {
                    continue;
                }
                if matches!(m.prohibited, Prohibited::Extralabel(_))
                    && EXTRALABEL.is_match(t)
                    && !v.nonadvice
                {
                    hit(Rule::ProhibitedExtralabel, Some(m));
                }
                if m.class == Class::HumanMedicine {
                    if v.advises() && !is_deferred {
                        hit(Rule::HumanMedicine, None);
                    }
                    continue;
                }
                match m.rx {
                    Rx::Always if m.class.is_antimicrobial() => {
                        if GROWTH_ONLY.is_match(t) && !v.nonadvice {
                            hit(Rule::RoutineAntimicrobial, None);
                        } else if !is_deferred && v.advises() {
                            hit(
                                if ROUTINE.is_match(t) {
                                    Rule::RoutineAntimicrobial
                                } else {
                                    Rule::AntimicrobialWithoutVet
                                },
                                None,
                            );
                        }
                    }
                    Rx::Always | Rx::AtDose => {
                        let supplement = m.class == Class::Unnamed && SUPPLEMENT.is_match(t);
                        let unnamed_needs_verb =
                            m.class != Class::Unnamed || v.imperative || v.advice || v.admin;
                        if v.dose
                            && v.advises()
                            && !is_deferred
                            && !supplement
                            && unnamed_needs_verb
                        {
                            hit(Rule::DoseWithoutVet, None);
                        }
                    }
                    Rx::No => {}
                }
            }
            if let Some(h) = HUMAN.find(t) {
                let pos = h.start();
                if !sentence_ban
                    && !v.forbids(pos)
                    && v.advises()
                    && !deferred(views, i, pos, names_vet, next)
                {
                    hit(Rule::HumanMedicine, None);
                }
            }
            let change = EXTRALABEL
                .find(t)
                .map(|x| x.start())
                .or_else(|| species_change(t).then_some(t.len()));
            if let Some(pos) = change
                && (sentence_medicine || text_medicine)
                && v.advises()
                && !sentence_ban
                && !v.forbids(pos)
                && !NEGATED_BEFORE.is_match(&t[..pos])
                && !v.nonadvice
                && !deferred(views, i, pos.max(1), names_vet, next)
            {
                hit(Rule::ExtralabelChange, None);
            }
            let last = i + 1 == views.len();
            if change.is_none()
                && last
                && i > 0
                && LABEL_BUT.is_match(sentence.text)
                && v.advises()
                && !v.forbids(t.len())
                && !deferred(views, i, t.len(), names_vet, next)
            {
                hit(Rule::ExtralabelChange, None);
            }
            let dismissed_withdrawal = WITHDRAWAL_DISMISS
                .find_iter(t)
                .any(|m| !NEGATED_BEFORE.is_match(&t[..m.start()]));
            let early_sale = (treated || RECOVERY.is_match(t))
                && market_advised(t)
                && PRODUCT.is_match(t)
                && ((EARLY.is_match(t) && !withdrawal_over) || TREATED_PRODUCT.is_match(t))
                && !keeps_withdrawal(t)
                && !v.nonadvice
                && !v.authority;
            if (dismissed_withdrawal && !v.nonadvice && !keeps_withdrawal(t)) || early_sale {
                hit(Rule::WithdrawalIgnored, None);
            }
            let weak = DISMISS_WEAK.find_iter(t).any(|m| {
                !NEGATED_BEFORE.is_match(&t[..m.start()])
                    && !v.prohibitions.iter().any(|&p| p < m.start())
            });
            let answered = views[i + 1..]
                .iter()
                .any(|w| WORTH.is_match(w.clause.text) || w.ask.is_some() || w.authority);
            if (v.dismissed && !answered)
                || (weak && TREATS.is_match(sentence.text) && !v.ban && !v.danger)
            {
                hit(Rule::VetDismissed, None);
            }
        }
        previous = current;
    }
    fired
}
