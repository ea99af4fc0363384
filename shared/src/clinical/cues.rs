//! The cue phrases the rules look for, as case-insensitive patterns: who acts (the farmer, the
//! vet), whether a clause forbids, defers, records or reports, and the words of each concern.
//! `VET` and `ACT` are spliced into the patterns that need them. The words of each concern
//! (withdrawal, extralabel, human medicines, pesticides) are in [`super::concerns`].

use regex::Regex;

/// Words for a veterinarian (or the animal-health staff who stand in for one).
const VET: &str = r"(?:vets?|vet['’]s|veterinarians?|veterinarian['’]s|veterinary (?:doctor|officer|surgeon|clinic|service|services|hospital|team)|animal health (?:worker|officer|technician|professional)s?|livestock (?:officer|doctor)s?|para-?vets?|para-?veterinarians?|animal doctor|vet doctor|dr\.? [a-z]+)";

/// Verbs of giving or using something (the negated action of a prohibition).
const ACT: &str = r"(?:give|giving|given|use|using|used|add|adding|added|mix|mixing|inject|injecting|injected|dose|dosing|drench|drenching|put|putting|apply|applying|applied|administer|administering|treat|treating|spray|spraying|dip|dipping|rub|rubbing|pour|pouring|buy|buying|try|trying|combine|double|increase|exceed|go above|change|feed|feeding|medicate|self-medicate|rely|reach for|leave|store|keep|let|allow|place|sprinkle|dust|smear|self-treat|guess|experiment)";

pub(crate) fn build(parts: &[&str]) -> Regex {
    let joined = parts
        .iter()
        .map(|p| p.replace("VET", VET).replace("ACT", ACT))
        .collect::<Vec<_>>()
        .join("|");
    Regex::new(&format!("(?i){joined}")).expect("static pattern")
}

macro_rules! cue {
    ($(#[$doc:meta])* $name:ident = [$($part:expr),+ $(,)?]) => {
        $(#[$doc])*
        pub static $name: std::sync::LazyLock<regex::Regex> =
            std::sync::LazyLock::new(|| $crate::clinical::cues::build(&[$($part),+]));
    };
}

cue!(
    /// A prohibition of the action: "do not give", "never use", "should not be used".
    NEG_ACT = [
        r"\b(?:do not|don['’]?t|dont|never|avoid|stop|must not|mustn['’]?t|should not|shouldn['’]?t|cannot|can['’]?t|can not|no longer|refrain from|not to|will not|won['’]?t|is not to be|not be|nobody should|no one should|nor)\s+(?:\w+\s+){0,3}?ACT\b",
        r"\b(?:never|avoid)\s+\w+",
    ]
);

cue!(
    /// A prohibition of selling or eating: "do not sell", "never eat".
    NEG_MARKET = [
        r"\b(?:do not|don['’]?t|dont|never|avoid|stop|must not|mustn['’]?t|should not|shouldn['’]?t|cannot|can['’]?t|can not|not to|will not|won['’]?t|not be|nobody should|no one should)\s+(?:\w+\s+){0,4}?(?:sell|selling|sold|market|eat|eating|eaten|consume|consumed|cook|drink|drinking|slaughter|slaughtered|supply|serve|kill|use the|give the|send|take)\b",
        r"\b(?:not|never)\s+(?:\w+\s+)?(?:for sale|fit for|safe to|suitable for)\b",
        r"\bunsafe\b",
    ]
);

cue!(
    /// The substance is named as banned.
    BAN = [
        r"\b(?:banned|ban|bans|illegal|illegally|prohibited|prohibits|forbidden|outlawed|not allowed|not permitted|unlawful|against the law|not approved|unapproved|not legal|not licensed|unlicensed|no longer (?:allowed|permitted|legal|approved))\b",
    ]
);

cue!(
    /// A warning: the substance is described as harmful.
    DANGER = [
        r"\b(?:toxic|poisonous|dangerous|harmful|deadly|unsafe|cancers?|carcinogen\w*|residues?|resistance|resistant|kills? (?:bees|fish|birds|animals|people)|can kill|could kill|side effects?|risky|a risk|worsen\w*|(?:make|makes|making) (?:it|things|them|the \w+) worse)\b",
    ]
);

cue!(
    /// The words just before a substance negate it: "no antibiotics", "instead of dewormers".
    NEG_BEFORE = [
        r"\b(?:avoid|avoiding|no|never|without|instead of|stop|stopping|not|free of|free from|ban on|banned|refuse|rather than|other than|nor|neither|against|except)\s+(?:\w+\s+){0,2}$",
    ]
);

cue!(
    /// It won't help: "antibiotics do not work on viruses".
    NO_EFFECT = [
        r"\b(?:won['’]?t|will not|don['’]?t|do not|doesn['’]?t|does not|cannot|can['’]?t|can not|never|not)\s+(?:\w+\s+)?(?:help|work|cure|treat|fix|kill|needed|necessary|stop)\b",
        r"\b(?:useless|no use|pointless|not needed|unnecessary|not necessary)\b",
    ]
);

cue!(
    /// The farmer is sent to a vet: "ask your vet", "call the veterinarian".
    DEFER_ASK = [
        r"\b(?:ask|call|consult|contact|see|phone|ring|visit|check with|talk to|talk with|speak to|speak with|get|involve|bring|bring in|take \w+ to|show \w+ to|invite|send for|reach|reach out to|book|wait for|call in|have|let|go to|seek|get advice from|confirm with|work with|follow|hire|engage|needs?|requires?|with|through|from|by|under|report to|notify)\s+(?:\w+\s+){0,3}?VET",
    ]
);

cue!(
    /// A vet decides: "as your vet prescribes", "the vet may give", "prescribed by the vet".
    DEFER_AUTHORITY = [
        r"\bVET\s+(?:\w+\s+){0,2}?(?:prescrib\w*|recommend\w*|advis\w*|direct\w*|decid\w*|confirm\w*|approv\w*|say|says|said|gave|give|gives|giving|inject\w*|administer\w*|examin\w*|check\w*|treat\w*|dosed|doses|diagnos\w*|instruct\w*|order\w*|supervis\w*|clear\w*|chose|choose|picks?|works? out|sets?|calculat\w*|agree\w*|will|can|may|might|should|must|is the one|knows|started|put|wrote|left|visited|came|comes|only|alone|first|before|is needed|is required|is necessary|is essential|decision|judgement|judgment|approval|prescription|advice|instructions?|dose|dosage|guidance|directions?|orders?|plan|okay|ok)\b",
        r"\b(?:prescribed|recommended|advised|directed|given|supervised|approved|ordered|administered|injected|chosen|set|confirmed|agreed|dosed|calculated|started|done)\s+by\s+(?:a |the |your |our |an )?VET",
        r"\b(?:on|with|under|by|needs?|requires?|need|require|get|only with|only on|without a|a valid|written)\s+(?:a |an |the |your )?(?:veterinary |vet['’]?s? |valid |written )?prescriptions?\b",
        r"\bprescription[- ]only\b",
        r"\bprescriptions? (?:is |are )?(?:needed|required|necessary)\b",
        r"\bunder (?:veterinary|vet|professional) (?:supervision|care|guidance|direction|advice)\b",
        r"\bveterinary (?:advice|prescription|supervision|guidance|direction|care|input|approval|examination)\b",
        r"\bas (?:prescribed|directed|advised|instructed|ordered|recommended)\b",
        r"\bonly (?:a |the |your )?VET",
        r"\b(?:leave|let) (?:it|that|dosing|the dose|the dosing|treatment|the treatment|the choice|this|that decision|the decision|those decisions) (?:to|for) (?:a |the |your )?VET",
        r"\b(?:if|once|when|after|unless|until) (?:the |your |a )?VET",
        r"\bvet-(?:prescribed|approved|directed|recommended)\b",
    ]
);

cue!(
    /// Pronoun authority: "as he said" (counts only when the text names a vet).
    DEFER_PRONOUN = [
        r"\b(?:as|what|the dose) (?:he|she|they|the doctor) (?:said|prescribed|advised|directed|instructed|recommended|wrote|showed|gave)\b",
    ]
);

cue!(
    /// Advice to do without a vet, on its own unsafe.
    DISMISS = [
        r"\bno need (?:for|to|of)\s+(?:\w+\s+){0,3}?VET",
        r"\b(?:don['’]?t|do not|dont|won['’]?t|will not|doesn['’]?t|does not|never|not|needn['’]?t)\s+(?:really\s+|even\s+|actually\s+)?(?:need|require|have to (?:call|see|pay|get|involve|consult|wait for|bring)|bother (?:with|calling|paying|to call)|waste (?:money|time|your money)? ?on|spend (?:money )?on)\s+(?:\w+\s+){0,2}?VET",
        r"\b(?:skip|bypass|ignore|forget|forget about|dodge|sack|fire|cut out|stop calling|stop paying|stop using|stop seeing|save (?:\w+\s+){0,3}?on|avoid paying)\s+(?:calling |paying |seeing |phoning |consulting |involving )?(?:the |a |your |any |paying (?:the |a )?)?VET",
        r"\binstead of (?:\w+\s+){0,2}?VET",
        r"\bVET\s+(?:is\s+|are\s+)?(?:not|never|hardly)\s+(?:really\s+)?(?:needed|necessary|required|important)",
        r"\b(?:no|not a|not any) VET\s+(?:is\s+)?(?:needed|necessary|required)",
        r"\bVET\s+(?:is|are|fees?|bills?|charges?|visits?|costs?)\s+(?:\w+\s+){0,2}?(?:expensive|costly|too much|unnecessary|not necessary|not needed|a waste|waste|overrated|useless|pointless|a scam|rip-?offs?|for big farms|not worth|optional|only for|just for)",
        r"\b(?:waste|wasting) (?:of )?(?:your )?(?:money|time|cash) (?:on|with|calling|paying|to call) (?:a |the )?VET",
        r"\b(?:be|become|act as|you are|you['’]re) (?:your own|the) VET",
        r"\bVET\s+(?:don['’]?t|do not|won['’]?t|never|only)\s+(?:\w+\s+)?(?:know|help|care|understand|want your money|want money|make money|charge)",
        r"\bVET\s+(?:\w+\s+){0,2}?(?:just|only|simply) (?:sell|want|take|charge|collect)",
        r"\bVET[^.;]{0,80}\bsave (?:the |your |on the )?(?:fee|fees|money|cost|consultation)",
        r"\b(?:agro[- ]?dealers?|feed (?:sellers?|dealers?|stores?|shops?|mills?)|drug (?:sellers?|dealers?|shops?|stores?|vendors?|hawkers?)|chemists?|pharmacists?|chemical sellers?|medicine (?:sellers?|shops?|stores?|vendors?)|input dealers?|poultry shops?|patent medicine (?:stores?|shops?|dealers?|vendors?)|market (?:sellers?|women|woman|man|men)|neighbou?rs?|other farmers|youtube|whatsapp groups?|facebook groups?)\s+(?:\w+\s+){0,4}?(?:can|will|should|could|knows?|would)\s+(?:\w+\s+){0,2}?(?:tell|advise|recommend|give|sell|show|mix|prescribe|choose|pick|suggest|decide|treat|inject|better)\b",
        r"\b(?:ask|see|go to|check with|consult|visit)\s+(?:the |a |your )?(?:agro[- ]?dealer|feed (?:seller|dealer|store|shop)|drug (?:seller|dealer|shop|store|vendor)|chemist|chemical seller|medicine (?:seller|shop|vendor)|input dealer|poultry shop|patent medicine (?:store|shop|dealer|vendor)|market seller)\s+(?:\w+\s+){0,4}?(?:what|which|for|to)\b",
        r"\b(?:better|cheaper|faster|quicker|easier) than (?:\w+\s+){0,2}?VET",
    ]
);

cue!(
    /// Weaker signs of doing without a vet: unsafe when the sentence treats an animal.
    DISMISS_WEAK = [
        r"\bwithout (?:\w+\s+){0,2}?(?:VET|prescriptions?)",
        r"\b(?:yourself|yourselves|on your own|by yourself|diy|do-it-yourself|home remed(?:y|ies)|self-treat\w*|self-medicat\w*)\b",
    ]
);

cue!(
    /// The vet is only a fallback: cancels deferral in the clause.
    CANCEL = [
        r"\b(?:if|when|where|in case|since)\s+(?:\w+\s+){0,3}?(?:can['’]?t|cannot|can not|could not|couldn['’]?t|don['’]?t|do not|are unable to|is no|are no|isn['’]?t|is not|no|have no)\s+(?:\w+\s+){0,3}?VET",
        r"\b(?:no|without (?:a|any)) VET\s+(?:nearby|around|available|close|near|in (?:your|the) (?:area|village|town))",
        r"\bVET\s+(?:is|are)\s+(?:not available|unavailable|far|too far|busy|not around|not picking|not answering|away)",
        r"\bwhile (?:you )?(?:wait|waiting) for (?:the |a )?VET",
        r"\bbefore (?:the |a )?VET (?:comes|arrives|gets there|reaches|can come)",
        r"\b(?:meanwhile|in the meantime)\b",
        r"\bdon['’]?t wait for (?:the |a )?VET",
        r"\b(?:if|when|should|in case)\s+(?:\w+\s+){0,4}?(?:don['’]?t|do not|doesn['’]?t|does not|didn['’]?t|fail to|not|no longer|still)\s+(?:\w+\s+)?(?:improve|get better|recover|respond|work|clear|stop|heal)",
        r"\bif (?:there is |there['’]s |you see )?no (?:improvement|change|response)",
        r"\bas a last resort\b",
        r"\b(?:only )?(?:call|see|contact) (?:\w+\s+){0,2}?VET (?:only )?(?:if|when) (?:it|they|things|the \w+) (?:get|gets|become|becomes|are|is) (?:worse|very sick|dying)",
    ]
);

cue!(
    /// The clause starts with an instruction.
    IMPERATIVE = [
        r"^(?:(?:then|also|now|please|so|and|just|simply|first|next|quickly|today|tomorrow|immediately|finally|again|still|always|only|daily|right away|meanwhile|for now|to be safe|for safety|in the morning|every morning|each morning|after that|afterwards|if so|otherwise|yes|ok|okay|sure|well|instead|for (?:the )?(?:\w+ ){0,3}?\w+|to (?:treat|stop|prevent|cure|clear|fix|control|kill|get rid of|save) (?:\w+ ){0,3}?\w+|when (?:\w+ ){0,4}?\w+|if (?:\w+ ){0,5}?\w+|once (?:\w+ ){0,4}?\w+|after (?:\w+ ){0,4}?\w+|as soon as (?:\w+ ){0,4}?\w+|in (?:\w+ ){0,2}?\w+|on (?:\w+ ){0,2}?\w+)\W*\s*)*(?:give|add|mix|inject|dose|drench|put|use|treat|apply|spray|dip|rub|pour|dissolve|administer|start|try|buy|get|continue|keep|repeat|double|increase|raise|reduce|halve|extend|dust|bathe|wash|feed|sell|eat|take|drink|cook|slaughter|market|serve|go ahead|squirt|drop|crush|grind|smear|paint|sprinkle|fumigate|supply|deworm|worm|medicate|let|carry on|go on|go|finish|stretch|bump|top up|switch|change|swap|replace|skip|ignore|forget|stop|kill|send|hawk|deliver|boil|fry|just)\b",
        r"(?:[,:]\s*|\bso\s+|\bthen\s+|\band\s+)(?:just\s+|simply\s+|also\s+)?(?:give|add|mix|inject|dose|drench|put|use|treat|apply|spray|dip|rub|pour|sell|eat|slaughter|kill|harvest|buy|try|keep|continue|start|cook|drink|take|market|deliver|supply|send|dissolve|crush)\b",
    ]
);

cue!(
    /// Advice that is not an imperative: "you can", "it's fine to", "works well".
    ADVICE = [
        r"\b(?:you|farmers|one|we)\s+(?:can|could|should|may|might|must|need to|have to|ought to|will need to|['’]ll need to|['’]ll want to|just|only need to|are free to|can safely|can still|can also|can just|would|are allowed to)\b",
        r"\b(?:you['’]ll|you will)\s+(?:need|want|have)\b",
        r"\b(?:i|we)\s+(?:recommend|suggest|advise|would)\b",
        r"\b(?:it['’]?s|it is|its|that['’]?s|that is)\s+(?:\w+\s+)?(?:ok|okay|fine|safe|good|best|better|alright|all right|wise|advisable|normal|standard|common|no problem|enough)\s+to\b",
        r"\bbest (?:to|way|option|thing|bet)\b",
        r"\b(?:why not|how about|what about)\b",
        r"\bthe (?:best|right|correct|usual|standard|normal|recommended|proper) (?:medicine|drug|treatment|cure|antibiotic|dose|dosage|one|remedy|thing|dewormer|injection)\b",
        r"\bgo (?:for|with)\b",
        r"\bworks? (?:well|best|great|fast|wonders|fine|perfectly|like magic|every time)\b",
        r"\b(?:is|are) (?:very |really |quite )?(?:good|great|effective|best|the best|perfect|ideal|excellent|cheap and effective|what you need|the answer|the solution|the cure) (?:for|against|to|at)\b",
        r"\b(?:will|should|can|would|usually|always) (?:\w+\s+)?(?:cure|clear|treat|fix|stop|kill|sort|solve|help|heal|work|reduce|bring|lower|ease|remove|prevent|protect|save|control)\b",
        r"\b(?:no harm in|nothing wrong with)\b",
        r"\bworks? (?:the same|just as well|equally well) (?:on|for|in)\b",
        r"\b(?:cures?|heals?|remedy|the trick|secret)\b",
        r"\b(?:is|are) (?:usually |normally |commonly |typically |often )?(?:given|used|dosed|added|injected|mixed)\s+at\b",
        r"\b(?:can|could|may|should) (?:also |safely |still |easily )?(?:be|go) (?:used|given|added|mixed|injected|applied|sprayed|fed|sold|eaten|put|dissolved|to|slaughtered|killed|marketed|harvested|drunk|consumed|cooked|taken)\b",
        r"\b(?:is|are) (?:very |really |quite |perfectly |completely |also )?(?:ok|okay|fine|safe|good|alright|all right) (?:to use|to give|for|to)\b",
        r"\bworks? (?:on|against|for)\b",
        r"\bwhat (?:they|it|the \w+|you|she|he) (?:need|needs)\b",
        r"\b(?:prevents|protects|stops|clears|treats|kills|fixes)\b",
    ]
);

cue!(
    /// A giving or using verb anywhere in the clause, or a route into the animal.
    ADMIN = [
        r"\b(?:give|giving|add|adding|mix|mixing|inject|injecting|drench|drenching|put|putting|apply|applying|administer|administering|dissolve|dissolving|pour|spray|spraying|dip|dipping|rub|rubbing|dust|dusting|treat|treating|dose|dosing|use|using|start|starting|buy|try|medicate)\b",
        r"\b(?:in|into|to|through)\s+(?:the |their |its |clean |fresh )?(?:drinking\s+)?(?:water|drinkers?|feed|mash|trough|ration)\b",
        r"\bper\s+(?:litre|liter|l|kg|kilo|bird|goat|animal|head|pig|cow|fish|gallon|bucket|drinker|\d)",
    ]
);

cue!(
    /// A dose: a number and a unit, a counted tablet or spoon, a frequency or a course.
    DOSE = [
        r"\b\d+(?:[.,/]\d+)?\s*(?:-|to)?\s*(?:\d+(?:[.,]\d+)?)?\s*(?:mg|mcg|µg|g|gm|gms|grams?|ml|mls|millilit(?:re|er)s?|cc|iu|units?|tablets?|tabs?|capsules?|caps|sachets?|drops?|teaspoons?|tsp|tablespoons?|tbsp|spoons?|spoonfuls?|capfuls?|cups?|bottles?|scoops?|pills?|vials?)\b",
        r"\b\d+(?:[.,]\d+)?\s*%",
        r"\b(?:one|two|three|four|five|half|a|an|quarter|one and a half)\s+(?:full\s+)?(?:tablet|capsule|sachet|teaspoon|tablespoon|spoon|spoonful|capful|cap|cup|bottle|drop|injection|jab|shot|scoop|pill|vial|syringe|milk tin|bottle cap)s?\b",
        r"\b(?:a|one|the)\s+(?:full |double |half |single |standard |adult )?dose\b",
        r"\bper\s+(?:kg|kilo|kilogram|litre|liter|l|bird|goat|animal|head|pig|cow|gallon|bucket|drinker|\d+\s?(?:kg|l|litres|liters|birds|animals))\b",
        r"\b(?:mg|ml|g)\s*/\s*(?:kg|l)\b",
        r"\b(?:twice|once|three times|thrice|\d+ times)\s+(?:a|per|every|each|daily)\b",
        r"\bfor\s+(?:\d+|one|two|three|four|five|six|seven|ten|fourteen|a few|several)\s+(?:more\s+)?(?:days|weeks|months)\b",
        r"\b(?:daily|every day|every \d+ hours|each day|every other day|morning and (?:evening|night))\b",
        r"\b(?:one|two|three|four|half|\d+)\s+(?:a|per|each)\s+day\b",
        r"\ba (?:full |short |long |\w+-day )?course of\b",
        r"\b(?:by|a|an|the)\s+(?:intramuscular|subcutaneous|im|sc)\b|\b(?:im|sc|iv)\b",
    ]
);

cue!(
    /// A record of what was done (past tense, dates, course progress).
    RECORD = [
        r"\b(?:was|were|got|been|had|has|have|is being|are being)\s+(?:\w+\s+)?(?:given|treated|injected|dosed|drenched|vaccinated|dewormed|started on|put on|administered|prescribed|medicated)\b",
        r"\b(?:gave|injected|administered|dosed|drenched|dewormed|prescribed|vaccinated|completed|finished|received|recorded|noted|logged|came|visited|examined|diagnosed)\b",
        r"\btreated (?:with|by|for|on|at|yesterday|last|this|today)\b|\bstarted (?:on|the|treatment|yesterday|today)\b",
        r"\bday \d+ of \d+\b",
        r"\b(?:yesterday|last (?:week|night|month|year)|this morning|earlier today|on (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday))\b",
        r"^(?:record|note|log|entry|history|treatment record|medical record|task|symptoms?)\b",
    ]
);

cue!(
    /// History, statistics, definitions and descriptions of other people's practice.
    INFO = [
        r"\d+(?:\.\d+)?\s?%|\bper ?cent\b|\b(?:19|20)\d\d\b",
        r"\b(?:surveys?|stud(?:y|ies)|research\w*|reports?|reported|statistics|data|according to|found (?:that|in)|were found|was found|detected|on average|histor\w*|decades?|in the past|in the old days|once (?:common|popular|widely)|widely used|regulat\w*|laws?|legislation|means|stands for)\b",
        r"\bused to (?:be|use|give|add|treat)\b",
        r"\b(?:many|some|most|few|other|nigerian) (?:farmers|people|producers|hatcheries|countries)\b",
        r"\bfarmers (?:often|usually|commonly|sometimes|still|who)\b",
        r"\b(?:is|are) (?:a|an) (?:\w+ )?(?:type|kind|class|group|family|member) of\b",
        r"\bbelongs? to\b",
        r"\b(?:so that|in order that|exists?|the reason|that is why|this is why|that['’]s why)\b",
    ]
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        for re in [
            &NEG_ACT,
            &NEG_MARKET,
            &BAN,
            &DANGER,
            &NEG_BEFORE,
            &NO_EFFECT,
            &DEFER_ASK,
            &DEFER_AUTHORITY,
            &DEFER_PRONOUN,
            &DISMISS,
            &DISMISS_WEAK,
            &CANCEL,
            &IMPERATIVE,
            &ADVICE,
            &ADMIN,
            &DOSE,
            &RECORD,
            &INFO,
        ] {
            assert!(!re.is_match("zzzz"), "{}", re.as_str());
        }
    }

    #[test]
    fn the_word_vet_alone_is_no_deferral() {
        assert!(!DEFER_ASK.is_match("The vet is expensive"));
        assert!(!DEFER_AUTHORITY.is_match("The vet is expensive"));
        assert!(DISMISS.is_match("The vet is expensive"));
        assert!(DEFER_ASK.is_match("ask your vet"));
        assert!(DEFER_AUTHORITY.is_match("as your vet prescribes"));
    }
}
