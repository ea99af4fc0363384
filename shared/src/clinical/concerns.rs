//! The words of each concern: selling or eating products of treated animals, changes to a
//! label, human medicines, routine antimicrobials, pesticides near animals, and the species
//! a product is labelled for. The stance cues (negation, deferral, advice) are in
//! [`super::cues`].

cue!(
    /// Selling or eating products.
    MARKET = [
        r"\b(?:sell|selling|sold|market|marketing|eat|eating|eaten|consume|consuming|consumed|cook|cooking|slaughter|slaughtering|slaughtered|butcher|butchering|kill (?:them|it|some|the \w+) for|supply|supplying|deliver|delivering|drink|drinking|serve|serving|hawk|hawking|buyers?|customers?|abattoir|market|sellers?|harvest|harvesting|crate|crating)\b",
        r"\b(?:use|feed|give) (?:the )?(?:milk|eggs|meat)\b",
        r"\bto (?:the )?(?:family|children|kids|customers|buyers|people|restaurant|suya)\b",
    ]
);

cue!(
    /// Products and animals that end up as food.
    PRODUCT = [
        r"\b(?:eggs?|milk|meat|flesh|carcass(?:es)?|fish|catfish|tilapia|honey|broilers?|birds?|chickens?|hens?|layers?|cockerels?|turkeys?|goats?|sheep|rams?|pigs?|hogs?|porkers?|cattle|cows?|bulls?|calves|animals?|them|it|they|offal|liver|kidneys?|pork|beef|chevon|mutton|suya|kpomo|nono|wara|cheese|yoghurt|crates?|the flock|the herd|the batch|fingerlings)\b",
    ]
);

cue!(
    /// Text that says animals were treated.
    TREATED = [
        r"\b(?:treated|treatment|treating|medicated|medication|medicine|drugs?|antibiotics?|injected|injection|injections|jab|dewormed|deworming|dewormer|wormer|dosed|course|withdrawal|on the drug|sprayed|drenched)\b",
    ]
);

cue!(
    /// Too early: "right away", "while they are still on the drug", "no need to wait".
    EARLY = [
        r"\b(?:now|immediately|right away|straight away|straightaway|at once|today|tonight|tomorrow|same day|the next day|next day|this week|as usual|as normal|like normal|normally)\b",
        r"\bduring (?:the )?(?:treatment|course|medication|dosing)\b",
        r"\bwhile (?:they|it|the \w+|you|she|he)\s+(?:are|is|['’]re|still|remain|remains)\s+(?:\w+\s+)?(?:on|under|being|taking|getting|receiving|treated|medicated|sick)\b",
        r"\bwhile (?:still )?(?:on|under|taking|receiving|getting|giving|treating) (?:the )?(?:\w+\s+)?(?:treatment|drug|drugs|medicine|antibiotics?|course|medication|injections?|it)\b",
        r"\bstill on (?:the )?(?:\w+\s+)?(?:treatment|drug|drugs|medicine|antibiotics?|course|medication|injection)\b",
        r"\bbefore (?:the )?(?:end of the )?withdrawal\b",
        r"\b(?:without waiting|no need to wait|needn['’]?t wait|no waiting|no wait)\b",
        r"\b(?:don['’]?t|do not|dont) (?:have to |need to |bother to )?wait\b",
        r"\b(?:as soon as|soon after|right after|just after|straight after|immediately after|shortly after|the moment|the day after|the day of)\b",
        r"\bafter (?:the )?(?:last|final|first|second) (?:dose|injection|jab|treatment|drench|day)\b",
        r"\b(?:a|one|two|2|three|3) days? after\b",
        r"\bwithin (?:a|one|two|three|\d+) (?:days?|hours?)\b",
        r"\b(?:once|when|as long as) (?:they|the \w+|it|she|he)\s+(?:\w+\s+)?(?:recover|recovers|look|looks|seem|seems|are well|is well|get better|gets better|stop|stops|start|starts|eat|eats|lay|lays|improve|improves|are fine|is fine|heal|heals)\b",
        r"\b(?:a|one) day or two\b",
        r"\b(?:from|on|by)\s+(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b|\bthe following day\b",
        r"\b(?:this weekend|next week|the weekend|in a few days|soon|just (?:been )?(?:injected|treated|dosed|given|drenched)|before (?:it|they|she|he) (?:gets? worse|dies?|die))\b",
    ]
);

cue!(
    /// The withdrawal period is dismissed, or residues are said not to matter.
    WITHDRAWAL_DISMISS = [
        r"\b(?:don['’]?t|do not|dont|no need to|needn['’]?t|never)\s+(?:\w+\s+){0,2}?(?:wait|worry|bother)\s+(?:\w+\s+){0,2}?withdrawal\b",
        r"\b(?:ignore|ignoring|skip|skipping|forget|forget about|disregard|don['’]?t worry about|do not worry about|no need for|don['’]?t bother with|do not bother with|cut short|shorten|shortening|halve|bypass|no|never mind|don['’]?t mind)\s+(?:the |a |any |that )?(?:\w+[- ]day\s+|\w+\s+)?withdrawal\b",
        r"\bwithdrawal\s+(?:\w+\s+){0,3}?(?:is not|isn['’]?t|are not|aren['’]?t|not|doesn['’]?t|does not|is just|is only|only)\s+(?:\w+\s+){0,2}?(?:necessary|needed|important|required|matter|apply|a myth|for big|for export|for commercial|for europe|for oyinbo|worth|real|serious|for exporters|for supermarkets)",
        r"\bwithdrawal\s+(?:\w+\s+)?(?:is|are)\s+(?:a myth|optional|overrated|nonsense|exaggerated|not real)\b",
        r"\b(?:drug|medicine|antibiotics?|it|injection|dewormer|medication)\s+(?:is|will be|has|would be|gets|['’]s|should be)\s+(?:already\s+|all\s+)?(?:out|gone|cleared|flushed|finished|washed|passed|worn|wore)\b",
        r"\b(?:worn off|wears off|wore off)\b",
        r"\b(?:nobody|no one|none of the buyers|the market doesn['’]?t)\s+(?:\w+\s+)?(?:tests?|checks?|inspects?|will test|will check)\b",
        r"\bno harm in (?:eating|selling|drinking|cooking|using)\b",
        r"\bwithdrawal\s+(?:\w+\s+){0,3}?(?:for|about) (?:big|large|commercial|export|exporters|white|foreign|oyinbo|rich)\b",
        r"\bwithdrawal\b[^.;]{0,80}\b(?:don['’]?t|do not|needn['’]?t) (?:need to |have to )?(?:worry|bother|care)\b",
        r"\b(?:safe|fine|ok|okay|no problem|alright|all right|good|harmless)\s+(?:for (?:people |your family |anyone )?)?to\s+(?:eat|sell|drink|consume|market|cook|slaughter)\b",
        r"\b(?:won['’]?t|will not|doesn['’]?t|does not|can['’]?t|cannot|will never|do not|don['’]?t)\s+(?:\w+\s+)?(?:affect|harm|hurt|get into|pass into|go into|stay in|remain in|reach|show up in|be detected|be found|transfer|pass to|enter)\s+(?:\w+\s+){0,3}?(?:eggs|milk|meat|people|customers|buyers|family|humans|consumers|anyone|flesh|you)\b",
        r"\b(?:buyers?|customers?|nobody|no one|people|the market)\s+(?:will not|won['’]?t|can['’]?t|cannot|don['’]?t|do not|will never|never|would not|wouldn['’]?t)\s+(?:\w+\s+)?(?:know|notice|tell|find out|detect|check|see)\b",
        r"\b(?:boil|boiling|boiled|cook|cooking|cooked|fry|frying|fried|roast|roasting)\s+(?:\w+\s+){0,5}?(?:removes?|kills?|destroys?|gets? rid of|takes? away|neutrali[sz]es?|burns?|cleans?|makes? (?:it|them) safe|deals with)\b",
        r"\b(?:residues?|antibiotics?|drugs?|the medicine)\s+(?:\w+\s+){0,2}?(?:are|is)\s+(?:harmless|not harmful|not dangerous|nothing|no problem|too small|tiny|negligible)\b",
    ]
);

cue!(
    /// The withdrawal is respected: "after the withdrawal period", "discard the milk".
    WITHDRAWAL_KEPT = [
        r"\b(?:after|once|when|until|till|unless)\s+(?:the\s+)?(?:full\s+)?(?:\w+[- ]day\s+)?withdrawal\b",
        r"\b(?:wait|waiting|observe|observing|keep to|respect|follow|stick to|honou?r|complete|completing|finish|count|end of)\s+(?:for\s+)?(?:\w+\s+){0,3}?withdrawal\b",
        r"\bwithdrawal\s+(?:period\s+|time\s+)?(?:is|has|was|had)\s+(?:\w+\s+)?(?:over|ended|passed|finished|complete|completed|done|elapsed)\b",
        r"\b(?:pour|throw|tip)\w*\s+(?:\w+\s+){0,2}?(?:away|out)\b",
        r"\b(?:discard\w*|throw\w* away|throw\w* out|dump\w*|destroy\w*|pour\w* away|bur(?:y|ied)|withh[oe]ld\w*|hold\w* back|keep\w* back|set aside|not for sale)\b",
        r"\bkeep\w*\s+(?:\S+\s+){0,5}?(?:off|away from|out of)\s+(?:the\s+)?(?:market|sale|buyers|customers|kitchen|table)\b",
        r"\b(?:label|leaflet|pack|vet|veterinarian)\s+(?:\w+\s+){0,3}?(?:says|said|states|confirms|confirmed|clears|cleared|allows|allowed|gives)\b",
        r"\bwait(?:ing)?\s+(?:\w+\s+){0,3}?(?:\d+|seven|ten|fourteen|twenty[- ]?\w*|three|four|five|six|eight|28|thirty|two|a few)\s+(?:full\s+|more\s+|clear\s+)?(?:days|weeks)\b",
        r"\b(?:\d+|seven|ten|fourteen|twenty[- ]?\w*|three|five|two|four|six|eight)\s+(?:full\s+|clear\s+)?(?:days|weeks)\s+(?:after|since|from)\s+(?:the\s+)?(?:last|final)\b",
    ]
);

cue!(
    /// A product from a treated animal: "eggs from treated hens", "milk of the injected cow".
    TREATED_PRODUCT = [
        r"\b(?:treated|medicated|injected|dewormed|drugged|sprayed|drenched)\s+(?:\w+\s+)?(?:eggs?|milk|meat|birds?|hens?|layers?|broilers?|chickens?|goats?|cows?|cattle|pigs?|fish|animals?|sheep|flock|herd)\b",
        r"\b(?:eggs?|milk|meat|honey|fish)\s+(?:from|of)\s+(?:the\s+)?(?:\w+\s+){0,3}?(?:treated|medicated|injected|dewormed|sprayed|sick)\b",
        r"\b(?:eggs?|milk|meat)\s+(?:laid|produced|collected|taken|milked)\s+(?:\w+\s+){0,2}?(?:during|while|on)\s+(?:the\s+)?(?:treatment|course|medication|drug|antibiotic)",
    ]
);

cue!(
    /// A change to the label: dose, frequency, route, species, duration.
    EXTRALABEL = [
        r"\b(?:double|doubling|triple|increase|increasing|raise|up|higher|stronger|bigger|extra|twice the|two times the|three times the|more than the|more of the|half|halve|halving|reduce|lower|cut|decrease|split|bump up|add more)\s+(?:the |your |a |that |this |of the )?(?:\w+\s+)?(?:dose|dosage|doses|amount|quantity|strength|concentration|rate)\b",
        r"\b(?:dose|dosage|amount|rate)\s+(?:\w+\s+){0,2}?(?:higher|stronger|above|beyond|double|doubled|twice|increased|up|more)\b",
        r"\b(?:more|higher|stronger|bigger|longer|less|lower|weaker|shorter|extra)\s+(?:\w+\s+)?(?:than|dose than|course than)\s+(?:\w+\s+){0,2}?(?:label|recommended|leaflet|pack|packet|instructions?|insert|manufacturer|bottle|sachet|written|printed|stated)\b",
        r"\b(?:above|beyond|over|past|exceed\w*)\s+(?:the\s+|what the\s+)?(?:label|labelled|labeled|recommended|stated|printed|written|maximum|leaflet)\b",
        r"\b(?:label|leaflet|pack|packet|instructions?|insert|bottle|sachet)\s+(?:\w+\s+){0,2}?(?:says?|said|recommends?|states?|shows?)\s+[^,;]{0,60}?\b(?:but|you can|instead|go for|use|give)\b",
        r"\binstead of\s+(?:once|twice|daily|the label|the recommended|\d+|one|two|three|five|seven|the \d+)\b",
        r"\b(?:twice|three times|thrice|four times|\d times)\s+(?:a|per|each)\s+day\s+instead\b",
        r"\b(?:extend|extending|prolong|lengthen|stretch)\s+(?:the\s+)?(?:\w+\s+)?(?:course|treatment|dosing|medication|doses)\b",
        r"\b(?:keep|continue|carry on|go on)\s+(?:giving|dosing|treating|injecting|with)\s+(?:\w+\s+){0,3}?(?:for|beyond|past|until|another|an extra|longer|more)\s+(?:\w+\s+)?(?:week|weeks|month|months|days|longer|more)\b",
        r"\b(?:another|an extra|extra|additional|\d+ more|two more|three more|a few more)\s+(?:week|weeks|days|day|months?|doses)\s+(?:of|on)\s+(?:the\s+)?(?:\w+\s+)?(?:drug|antibiotic|treatment|medicine|course|it|injection|dewormer|dosing)\b",
        r"\b(?:inject|injecting)\s+(?:the\s+)?(?:oral|drinking|water[- ]soluble|soluble|powder|pour[- ]on|tablets?|feed)\b",
        r"\b(?:give|put|add|mix|pour|dissolve)\s+(?:the\s+)?(?:injectable|injection|pour[- ]on|spray|dip|pessary)\s+(?:\w+\s+){0,2}?(?:in|into|by|orally|to drink|as a drench)\b",
        r"\b(?:by mouth|orally|in the water|in the feed) instead\b",
        r"\b(?:drink|swallow|drench with)\s+(?:the\s+)?(?:pour[- ]on|injectable)\b",
        r"\b(?:cattle|cow|dog|cat|horse|sheep|pig|swine|poultry|chicken|human|people|adult|children|baby|equine|canine|pet)['’]?s?\s+(?:\w+\s+)?(?:product|dewormer|wormer|medicine|drug|formulation|dose|dosage|version|injection|pour[- ]on|tablets?|antibiotic|spray)s?\s+(?:\w+\s+){0,3}?(?:on|for|to|in|into)\s+(?:your |the |their |my )?(?:\w+\s+)?(?:goats?|sheep|pigs?|birds?|chickens?|poultry|fish|rabbits?|cattle|cows?|calves|kids|lambs|piglets|layers|broilers|turkeys?|ducks?|snails|grasscutters?)\b",
        r"\b(?:labell?ed|made|meant|registered|approved|only|formulated|intended)\s+for\s+(?:cattle|cows|dogs|cats|horses|sheep|pigs|poultry|chickens|humans|people|adults|children|dairy|beef|pets|broilers)\b[^.;]{0,60}?\b(?:but|also|too|works|fine)\b",
        r"\b(?:works|fine|safe|ok|okay|good)\s+(?:on|for|in)\s+(?:goats?|fish|pigs?|sheep|rabbits?|birds?|chickens?|layers|snails|ducks?|cattle|cows?)\s+too\b",
        r"\buse (?:the )?same\s+(?:\w+\s+){0,2}?(?:dose|medicine|drug|product|injection|dewormer)\s+(?:for|on)\b",
        r"\boff[- ]label\b|\bextra[- ]?label\b",
        r"\b(?:mix|combine|stack)\s+(?:two|2|both|three|different|the|it with another|them with)\s+(?:\w+\s+)?(?:antibiotics|drugs|medicines|dewormers)\b",
        r"\b(?:until|till)\s+(?:they|the \w+|it|she|he)\s+(?:\w+\s+)?(?:recover|recovers|get better|gets better|look better|looks better|are well|is well|improve|improves|are fine)\b",
        r"\b(?:as long as|until|till)\s+(?:the\s+)?(?:\w+\s+)?(?:symptoms|signs|cough|coughing|diarrh\w+|scour\w*|sneezing)\s+(?:stop|stops|go|goes|clear|clears|disappear\w*|end|ends)\b",
    ]
);

cue!(
    /// A medicine is in play (what an extralabel change applies to).
    MEDICINE_WORD = [
        r"\b(?:not working|isn['’]?t working|doesn['’]?t work|does not work|no improvement)\b",
        r"\b(?:dose|dosage|doses|label|leaflet|medicine|medicines|drug|drugs|antibiotics?|dewormer|wormer|injection|course|treatment|product|tablets?|capsules?|pour[- ]on|injectable|vaccine|bolus|drench|wormers?)\b",
    ]
);

cue!(
    /// A human medicine, by where it comes from or whom it is for.
    HUMAN = [
        r"\bhuman\s+(?:\w+\s+)?(?:medicines?|drugs?|tablets?|capsules?|antibiotics?|painkillers?|pain killers?|syrups?|version|formulation|dose|products?|pills?|creams?|ointments?|eye drops?)\b",
        r"\b(?:from|at|in)\s+(?:the |a |any |your )?(?:local\s+)?(?:chemist|pharmacy|patent medicine (?:store|shop|dealer|vendor)|drug ?store|hospital|chemist shop|medicine store)\b",
        r"\byour own\s+(?:medicine|medicines|drugs|tablets|antibiotics|pills|painkillers|capsules|prescription)\b",
        r"\b(?:tablets|capsules|syrup|drugs|medicine|pills|antibiotics)\s+(?:that\s+)?(?:you|people|children|kids|your family|humans|adults|we|i)\s+(?:take|use|drink|swallow|took|used)\b",
        r"\b(?:left[- ]?over|leftover|remaining|old|expired)\s+(?:\w+\s+)?(?:tablets|capsules|antibiotics|drugs|medicine|pills|prescription)\b",
        r"\b(?:malaria|typhoid|cold|flu|headache|cough|fever|stomach)\s+(?:drugs?|medicines?|tablets?|pills?|syrups?)\b",
        r"\bpills?\b",
        r"\bpharmacy (?:antibiotics?|drugs?|medicines?|tablets?|capsules?)\b",
        r"\bas (?:on|in|for) (?:people|humans|children|adults)\b",
        r"\b(?:meant|made|intended|prescribed) for (?:people|humans|children|adults|you|your (?:wife|husband|child|children|family))\b",
    ]
);

cue!(
    /// The antimicrobial is routine, preventive, for a whole group, or for growth.
    ROUTINE = [
        r"\b(?:routine|routinely|regularly|every (?:week|month|batch|flock|day|two weeks|few weeks|\d+ (?:days|weeks))|weekly|monthly|each (?:week|month|batch)|to prevent|prevention|preventive|preventative|prophyla\w*|as a precaution|just in case|to be safe|for safety|on arrival|from day one|from the first day)\b",
        r"\b(?:all (?:the |your )?(?:birds|chicks|animals|pigs|goats|flock|fish|layers|broilers)|whole (?:flock|herd|house|pen|batch|group|pond|farm)|entire (?:flock|herd|house|pen|batch|group|farm)|day[- ]old chicks|starter (?:antibiotic|pack))\b",
        r"\binstead of (?:cleaning|biosecurity|vaccinat\w*|good hygiene|disinfect\w*|improving)\b|\bto make up for\b|\bto cover (?:for )?(?:poor|dirty|bad)\b",
        GROWTH,
    ]
);

/// Growth promotion (no antimicrobial for growth: EU 2019/6 art 107(2), FDA GFI #209/#213).
const GROWTH: &str = r"\bgrowth promot\w*|\bto (?:boost|promote|improve|speed up|increase|help) (?:\w+\s+)?(?:growth|weight|appetite|production|laying|egg production|size)\b|\bmake (?:them|the \w+) (?:grow|big|bigger|fat|fatter|heavy|heavier)\b|\bfatten\w*\b|\bgrow (?:faster|quicker|bigger)\b";

cue!(
    /// Growth promotion alone.
    GROWTH_ONLY = [GROWTH]
);

cue!(
    /// "The label says X, but give Y": a change across a contrast (checked on the sentence).
    LABEL_BUT = [
        r"\b(?:label|leaflet|pack|packet|instructions?|insert|bottle|sachet)\s+(?:\w+\s+){0,2}?(?:says?|said|recommends?|states?|shows?)\b[^;]{0,80}?\bbut\b",
    ]
);

cue!(
    /// On or near animals, their water, feed or housing.
    ON_ANIMAL = [
        r"\b(?:on|onto|over|into|in|around|near|inside|under|to|through|across|all over|at)\s+(?:the |your |their |his |her |its |each |every |all |a )?(?:\w+\s+)?(?:birds?|chickens?|hens?|layers|broilers|chicks|poultry|cockerels?|turkeys?|ducks?|goats?|kids|sheep|lambs|pigs?|piglets|sows?|cattle|cows?|calves|bulls?|animals?|livestock|fish|fingerlings|ponds?|tanks?|pens?|coop|house|pig ?sty|pigsty|sty|barn|kraal|hutch|cages?|litter|bedding|feeds?|ration|water|drinkers?|troughs?|skin|body|backs?|fur|hair|coat|feathers|wool|ears|wounds?|sores?|udder|teats?|legs|feet|hooves|stream|river|farm|them)\b",
        r"\b(?:spray|spraying|dip|dipping|dust|dusting|rub|rubbing|smear|bathe|bathing|wash|washing|drench|paint|sprinkle|pour|mix|add|fumigate|fog|treat)\s+(?:\w+\s+){0,3}?(?:birds?|chickens?|hens?|goats?|sheep|pigs?|cattle|cows?|animals?|fish|pen|pens|house|coop|litter|feed|water|them)\b",
        r"\bto (?:kill|get rid of|remove|treat|control|stop|chase)\s+(?:the\s+)?(?:\w+\s+)?(?:lice|mites?|ticks?|fleas?|flies|worms|maggots|mange|fish|parasites|insects|weevils|bugs)\b",
        r"\b(?:catch|harvest|kill|stun|poison)\s+(?:the\s+)?(?:\w+\s+)?fish\b",
    ]
);

cue!(
    /// Kept away from animals, or used on an empty house.
    PROTECT = [
        r"\b(?:keep|store|lock|place|put)\s+(?:\w+\s+){0,5}?(?:away|out of reach|locked|separately|far from|apart|high up)\b",
        r"\b(?:away|far) from\b",
        r"\bempty\b|\bbefore (?:restocking|the (?:new )?(?:birds|chicks|animals|fish) (?:arrive|come))\b",
        r"\b(?:after|once) (?:\w+\s+){0,3}?(?:removed|moved out|sold off|depopulat\w*)\b",
        r"\bbetween (?:batches|flocks|cycles)\b",
    ]
);

cue!(
    /// Used as its label says (a registered veterinary product).
    LABEL_OK = [
        r"\b(?:labell?ed|approved|registered|licensed|formulated)\s+for\s+(?:use (?:on|in)\s+)?(?:\w+\s+)?(?:cattle|goats|sheep|pigs|poultry|chickens|birds|animals|livestock|fish|veterinary use)\b",
        r"\b(?:as|exactly as)\s+(?:directed|stated|written|shown|instructed)\s+on\s+(?:the\s+)?(?:label|pack|packet)\b",
        r"\bfollow(?:ing)?\s+(?:the\s+)?(?:\w+\s+)?label\b|\baccording to (?:the )?label\b",
        r"\bveterinary (?:product|formulation|acaricide|insecticide|pour[- ]on)\b",
    ]
);

cue!(
    /// A crop or household product (what makes a pyrethroid off-label on animals).
    CROP_PRODUCT = [
        r"\b(?:crops?|farm chemicals?|agro|household|mosquito|maize|beans|cowpea|vegetables|tomato\w*|yam|cassava|garden|field|termites?|the one for|meant for)\b",
    ]
);

cue!(
    /// Treating an animal (what makes "yourself" or "without a vet" unsafe).
    TREATS = [
        r"\b(?:treat|treating|treatment|cure|medicine|drug|drugs|inject|injection|dose|dosing|deworm|castrat\w*|operate|lance|stitch|remedy|antibiotics?|jab|give|giving|drench|medicate|surgery|cut|assist the birth|pull the calf|pull the kid)\b",
    ]
);

cue!(
    /// A later clause saying the vet is worth it ("but it is worth calling one").
    WORTH = [
        r"\b(?:worth (?:calling|paying|seeing|getting|the money|it)|still (?:call|see|consult|ask))\b",
        r"\b(?:saves? (?:you )?(?:money|lives|the flock|the herd)|pays? for itself|cheaper in the end|in the long run)\b",
    ]
);

cue!(
    /// Recovery as the moment to sell: implies the animals were sick and treated.
    RECOVERY = [
        r"\b(?:once|when|as soon as|after)\s+(?:they|the \w+|it|she|he)\s+(?:\w+\s+)?(?:recover\w*|look\w* (?:well|better|fine|healthy)|get better|gets better|are well|is well|heal\w*|improve\w*)",
    ]
);

/// Species groups, for a product labelled for one species given to another.
pub const SPECIES: &[(&str, &[&str])] = &[
    (
        "cattle",
        &[
            "cattle", "cow", "cows", "bull", "bulls", "calf", "calves", "heifer", "heifers",
        ],
    ),
    ("dog", &["dog", "dogs", "puppy", "puppies"]),
    ("cat", &["cat", "cats"]),
    ("horse", &["horse", "horses", "donkey", "donkeys"]),
    (
        "sheep",
        &["sheep", "lamb", "lambs", "ram", "rams", "ewe", "ewes"],
    ),
    (
        "pig",
        &[
            "pig", "pigs", "swine", "piglet", "piglets", "sow", "sows", "boar",
        ],
    ),
    (
        "broiler",
        &[
            "broiler",
            "broilers",
            "chicken",
            "chickens",
            "poultry",
            "bird",
            "birds",
            "cockerel",
            "cockerels",
            "chicks",
            "turkey",
            "turkeys",
            "duck",
            "ducks",
        ],
    ),
    ("layer", &["layer", "layers", "hen", "hens"]),
    (
        "goat",
        &[
            "goat", "goats", "kid", "kids", "buck", "bucks", "doe", "does",
        ],
    ),
    (
        "fish",
        &["fish", "catfish", "tilapia", "fingerlings", "pond"],
    ),
    ("rabbit", &["rabbit", "rabbits"]),
    (
        "human",
        &["human", "humans", "people", "adults", "children"],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        for re in [
            &MARKET,
            &PRODUCT,
            &TREATED,
            &EARLY,
            &WITHDRAWAL_DISMISS,
            &WITHDRAWAL_KEPT,
            &TREATED_PRODUCT,
            &EXTRALABEL,
            &MEDICINE_WORD,
            &HUMAN,
            &ROUTINE,
            &GROWTH_ONLY,
            &ON_ANIMAL,
            &PROTECT,
            &LABEL_OK,
            &CROP_PRODUCT,
            &TREATS,
            &WORTH,
            &RECOVERY,
        ] {
            assert!(!re.is_match("zzzz"), "{}", re.as_str());
        }
    }
}
