//! The substance vocabulary, as data: one row per generic name (brand-free, plus the few
//! everyday names West African farmers use for the same active ingredient), its class,
//! whether it needs a veterinarian's prescription, and where it is prohibited in
//! food-producing animals. Class words ("antibiotic", "dewormer", "steroid") and
//! name endings (`-mycin`, `-floxacin`, `-nidazole`, ...) catch the medicines not listed here.

use super::Category;

/// What a substance is, in the sense that matters for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Tetracycline,
    Penicillin,
    Cephalosporin,
    Macrolide,
    Lincosamide,
    Pleuromutilin,
    Sulfonamide,
    Aminoglycoside,
    Fluoroquinolone,
    Polymyxin,
    Amphenicol,
    Nitrofuran,
    Nitroimidazole,
    Glycopeptide,
    OtherAntimicrobial,
    Avermectin,
    Benzimidazole,
    OtherAnthelmintic,
    Coccidiostat,
    Corticosteroid,
    Nsaid,
    Hormone,
    BetaAgonist,
    Thyrostatic,
    Antiviral,
    /// EU 37/2010 Table 2 substances with no safe residue level (chloroform, colchicine, ...).
    NoSafeResidue,
    /// Aquaculture dyes (malachite green, crystal violet).
    Dye,
    /// Human medicines with no veterinary use on food animals (painkillers, antimalarials).
    HumanMedicine,
    Organochlorine,
    Organophosphate,
    Carbamate,
    Pyrethroid,
    Herbicide,
    Rodenticide,
    /// Household chemicals used as folk remedies on animals (kerosene, engine oil).
    Chemical,
    /// "medicine", "drug", "injection": no class known; dosing one still needs a vet.
    Unnamed,
}

impl Class {
    pub fn is_antimicrobial(self) -> bool {
        use Class::*;
        matches!(
            self,
            Tetracycline
                | Penicillin
                | Cephalosporin
                | Macrolide
                | Lincosamide
                | Pleuromutilin
                | Sulfonamide
                | Aminoglycoside
                | Fluoroquinolone
                | Polymyxin
                | Amphenicol
                | Nitrofuran
                | Nitroimidazole
                | Glycopeptide
                | OtherAntimicrobial
        )
    }

    pub fn is_pesticide(self) -> bool {
        use Class::*;
        matches!(
            self,
            Organochlorine
                | Organophosphate
                | Carbamate
                | Pyrethroid
                | Herbicide
                | Rodenticide
                | Chemical
        )
    }
}

/// When advice to use the substance needs a veterinarian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rx {
    /// Over the counter (pesticides are judged by their own rule).
    No,
    /// Any advice to use it (medically important antimicrobials: VFD, GFI #263, EU 2019/6).
    Always,
    /// Advice that gives a dose (anthelmintics, coccidiostats, steroids, NSAIDs, unnamed).
    AtDose,
}

/// Where, and how far, a substance is prohibited in food-producing animals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prohibited {
    Nowhere,
    /// Every use (21 CFR 530.41(a), EU 37/2010 Table 2, EU 96/22/EC), in the listed places.
    Always(&'static [Jurisdiction]),
    /// Extralabel use only (US fluoroquinolones and glycopeptides, 21 CFR 530.41(a)).
    Extralabel(&'static [Jurisdiction]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jurisdiction {
    Us,
    Eu,
    /// Nigeria (NAFDAC's list of banned veterinary substances follows the EU one).
    Ng,
}

impl Prohibited {
    /// Where a substance of `class` is prohibited, by the instrument that prohibits it, in the
    /// order of the row's jurisdictions (empty for [`Prohibited::Nowhere`]). What a violation
    /// of the prohibited-substance rules cites (`Violation::prohibited_where`).
    pub fn citations(self, class: Class) -> Vec<&'static str> {
        match self {
            Prohibited::Nowhere => Vec::new(),
            Prohibited::Always(places) => places.iter().map(|&j| citation(j, class)).collect(),
            Prohibited::Extralabel(places) => places
                .iter()
                .map(|&j| match j {
                    Us => "US 21 CFR 530.41(a) (extralabel use)",
                    Eu => "EU (extralabel use)",
                    Ng => "NG NAFDAC (extralabel use)",
                })
                .collect(),
        }
    }
}

/// The instrument that prohibits every use of a substance of `class` in `place`.
///
/// * US: 21 CFR 530.41 (drugs prohibited in food-producing animals; (d): adamantanes and
///   neuraminidase inhibitors in chickens, turkeys and ducks); the aquaculture dyes are
///   unapproved animal drugs;
///   the organochlorines' registrations were cancelled by the EPA.
/// * EU: hormones, beta-agonists and thyrostatics by Directive 96/22/EC; avoparcin by
///   Directive 97/6/EC; the organochlorines by the POPs Regulation 2019/1021 (Stockholm
///   Convention); substances with no maximum residue limit (the dyes, antivirals) by
///   Regulation 470/2009 art 16; the rest by Regulation 37/2010 Table 2.
/// * Nigeria: NAFDAC's list of banned veterinary substances.
pub fn citation(place: Jurisdiction, class: Class) -> &'static str {
    match (place, class) {
        (Us, Antiviral) => "US 21 CFR 530.41(d)",
        (Us, Dye) => "US FDA (unapproved animal drug)",
        (Us, Organochlorine) => "US EPA (registration cancelled)",
        (Us, _) => "US 21 CFR 530.41",
        (Eu, Hormone | BetaAgonist | Thyrostatic) => "EU 96/22/EC",
        (Eu, Glycopeptide) => "EU 97/6/EC",
        (Eu, Organochlorine) => "EU 2019/1021 (persistent organic pollutants)",
        (Eu, Dye | Antiviral) => "EU 470/2009 art 16 (no maximum residue limit)",
        (Eu, _) => "EU 37/2010 Table 2",
        (Ng, _) => "NG NAFDAC banned list",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Substance {
    /// Generic name, lower case; `aliases` are other spellings and everyday names.
    pub name: &'static str,
    pub aliases: &'static [&'static str],
    pub class: Class,
    pub rx: Rx,
    pub prohibited: Prohibited,
}

impl Substance {
    /// The category a use of it offends first.
    pub fn category(&self) -> Category {
        match (self.prohibited, self.class) {
            (Prohibited::Always(_), _) => Category::ProhibitedSubstance,
            (_, Class::HumanMedicine) => Category::HumanMedicine,
            (_, c) if c.is_pesticide() => Category::Pesticide,
            _ => Category::PrescriptionOnly,
        }
    }
}

use Class::*;
use Jurisdiction::*;

const ALL: &[Jurisdiction] = &[Us, Eu, Ng];
const EU_NG: &[Jurisdiction] = &[Eu, Ng];
const US: &[Jurisdiction] = &[Us];

const fn row(
    name: &'static str,
    aliases: &'static [&'static str],
    class: Class,
    rx: Rx,
    prohibited: Prohibited,
) -> Substance {
    Substance {
        name,
        aliases,
        class,
        rx,
        prohibited,
    }
}

const NONE: Prohibited = Prohibited::Nowhere;
const BANNED: Prohibited = Prohibited::Always(ALL);
const BANNED_EU: Prohibited = Prohibited::Always(EU_NG);
const US_EXTRALABEL: Prohibited = Prohibited::Extralabel(US);

#[rustfmt::skip]
pub const SUBSTANCES: &[Substance] = &[
    // antimicrobials (prescription-only: US VFD 2017 and GFI #263 2023; EU 2019/6)
    row("oxytetracycline", &["oxytet", "oxytetracyclin", "otc powder", "terramycin", "oxytetra"], Tetracycline, Rx::Always, NONE),
    row("tetracycline", &[], Tetracycline, Rx::Always, NONE),
    row("chlortetracycline", &[], Tetracycline, Rx::Always, NONE),
    row("doxycycline", &["doxy"], Tetracycline, Rx::Always, NONE),
    row("penicillin", &["pen strep", "pen-strep", "penstrep", "procaine penicillin", "benzylpenicillin"], Penicillin, Rx::Always, NONE),
    row("amoxicillin", &["amoxycillin", "amoxil", "amox", "augmentin", "co-amoxiclav", "amoxiclav"], Penicillin, Rx::Always, NONE),
    row("ampicillin", &[], Penicillin, Rx::Always, NONE),
    row("cloxacillin", &["ampiclox"], Penicillin, Rx::Always, NONE),
    row("ceftiofur", &[], Cephalosporin, Rx::Always, US_EXTRALABEL),
    row("cefalexin", &["cephalexin"], Cephalosporin, Rx::Always, NONE),
    row("tylosin", &["tylan"], Macrolide, Rx::Always, NONE),
    row("erythromycin", &[], Macrolide, Rx::Always, NONE),
    row("tilmicosin", &[], Macrolide, Rx::Always, NONE),
    row("tulathromycin", &[], Macrolide, Rx::Always, NONE),
    row("lincomycin", &["lincospectin"], Lincosamide, Rx::Always, NONE),
    row("tiamulin", &[], Pleuromutilin, Rx::Always, NONE),
    row("sulfadimidine", &["sulphadimidine", "sulfamethazine"], Sulfonamide, Rx::Always, NONE),
    row("sulfaquinoxaline", &["sulphaquinoxaline"], Sulfonamide, Rx::Always, NONE),
    row("sulfadiazine", &["sulphadiazine"], Sulfonamide, Rx::Always, NONE),
    row("trimethoprim", &["trimethoprim-sulfa", "co-trimoxazole", "cotrimoxazole", "septrin"], Sulfonamide, Rx::Always, NONE),
    row("sulfonamide", &["sulfonamides", "sulphonamide", "sulphonamides", "sulfa drug", "sulfa drugs", "sulpha drug", "sulpha drugs", "sulfa", "sulpha"], Sulfonamide, Rx::Always, NONE),
    row("streptomycin", &[], Aminoglycoside, Rx::Always, NONE),
    row("gentamicin", &["gentamycin"], Aminoglycoside, Rx::Always, NONE),
    row("neomycin", &[], Aminoglycoside, Rx::Always, NONE),
    row("spectinomycin", &[], Aminoglycoside, Rx::Always, NONE),
    row("enrofloxacin", &["enrofloxacine", "enro", "baytril"], Fluoroquinolone, Rx::Always, US_EXTRALABEL),
    row("ciprofloxacin", &["cipro"], Fluoroquinolone, Rx::Always, US_EXTRALABEL),
    row("norfloxacin", &[], Fluoroquinolone, Rx::Always, US_EXTRALABEL),
    row("flumequine", &[], Fluoroquinolone, Rx::Always, US_EXTRALABEL),
    row("colistin", &["polymyxin"], Polymyxin, Rx::Always, NONE),
    row("florfenicol", &[], Amphenicol, Rx::Always, NONE),
    row("thiamphenicol", &[], Amphenicol, Rx::Always, NONE),
    row("bacitracin", &[], OtherAntimicrobial, Rx::Always, NONE),
    row("vancomycin", &[], Glycopeptide, Rx::Always, US_EXTRALABEL),
    row("avoparcin", &[], Glycopeptide, Rx::Always, BANNED_EU),
    // prohibited in food-producing animals: 21 CFR 530.41, EU 37/2010 Table 2, EU 96/22/EC
    row("chloramphenicol", &["chloromycetin"], Amphenicol, Rx::Always, BANNED),
    row("furazolidone", &[], Nitrofuran, Rx::Always, BANNED),
    row("nitrofurazone", &[], Nitrofuran, Rx::Always, BANNED),
    row("nitrofurantoin", &[], Nitrofuran, Rx::Always, BANNED),
    row("furaltadone", &[], Nitrofuran, Rx::Always, BANNED),
    row("nitrofuran", &["nitrofurans"], Nitrofuran, Rx::Always, BANNED),
    row("metronidazole", &["flagyl"], Nitroimidazole, Rx::Always, BANNED),
    row("dimetridazole", &["emtryl"], Nitroimidazole, Rx::Always, BANNED),
    row("ipronidazole", &[], Nitroimidazole, Rx::Always, BANNED),
    row("ronidazole", &[], Nitroimidazole, Rx::Always, BANNED),
    row("tinidazole", &[], Nitroimidazole, Rx::Always, BANNED),
    row("nitroimidazole", &["nitroimidazoles"], Nitroimidazole, Rx::Always, BANNED),
    // EU 37/2010 Table 2; not on the US list of 21 CFR 530.41
    row("dapsone", &[], NoSafeResidue, Rx::Always, BANNED_EU),
    row("chloroform", &[], NoSafeResidue, Rx::No, BANNED_EU),
    row("chlorpromazine", &["largactil"], NoSafeResidue, Rx::Always, BANNED_EU),
    row("colchicine", &[], NoSafeResidue, Rx::Always, BANNED_EU),
    row("aristolochia", &["aristolochic acid"], NoSafeResidue, Rx::No, BANNED_EU),
    row("diethylstilbestrol", &["des", "stilbestrol", "stilbene", "stilbenes"], Hormone, Rx::Always, BANNED),
    row("clenbuterol", &[], BetaAgonist, Rx::Always, BANNED),
    row("ractopamine", &[], BetaAgonist, Rx::Always, BANNED_EU),
    row("zilpaterol", &[], BetaAgonist, Rx::Always, BANNED_EU),
    row("salbutamol", &["albuterol", "ventolin"], BetaAgonist, Rx::Always, BANNED_EU),
    row("beta-agonist", &["beta agonist", "beta-agonists", "beta agonists"], BetaAgonist, Rx::Always, BANNED_EU),
    row("growth hormone", &["growth hormones", "growth promoter hormone", "hormone injection", "hormone injections", "hormones"], Hormone, Rx::Always, BANNED_EU),
    row("trenbolone", &[], Hormone, Rx::Always, BANNED_EU),
    row("zeranol", &[], Hormone, Rx::Always, BANNED_EU),
    row("estradiol", &["oestradiol"], Hormone, Rx::Always, BANNED_EU),
    row("testosterone", &[], Hormone, Rx::Always, BANNED_EU),
    row("methyltestosterone", &[], Hormone, Rx::Always, BANNED_EU),
    row("thiouracil", &["methylthiouracil", "propylthiouracil"], Thyrostatic, Rx::Always, BANNED_EU),
    row("methimazole", &["carbimazole", "thyrostatic", "thyrostatics"], Thyrostatic, Rx::Always, BANNED_EU),
    row("amantadine", &["rimantadine"], Antiviral, Rx::Always, BANNED),
    row("oseltamivir", &["tamiflu", "zanamivir"], Antiviral, Rx::Always, BANNED),
    row("malachite green", &["leucomalachite green"], Dye, Rx::No, BANNED),
    row("crystal violet", &["gentian violet", "methyl violet"], Dye, Rx::No, BANNED),
    // anthelmintics and coccidiostats (a dose needs a vet)
    row("ivermectin", &["ivomec", "iver"], Avermectin, Rx::AtDose, NONE),
    row("doramectin", &[], Avermectin, Rx::AtDose, NONE),
    row("abamectin", &[], Avermectin, Rx::AtDose, NONE),
    row("moxidectin", &[], Avermectin, Rx::AtDose, NONE),
    row("albendazole", &["valbazen"], Benzimidazole, Rx::AtDose, NONE),
    row("fenbendazole", &["panacur"], Benzimidazole, Rx::AtDose, NONE),
    row("mebendazole", &[], Benzimidazole, Rx::AtDose, NONE),
    row("oxfendazole", &[], Benzimidazole, Rx::AtDose, NONE),
    row("levamisole", &["tetramisole"], OtherAnthelmintic, Rx::AtDose, NONE),
    row("piperazine", &[], OtherAnthelmintic, Rx::AtDose, NONE),
    row("praziquantel", &[], OtherAnthelmintic, Rx::AtDose, NONE),
    row("closantel", &[], OtherAnthelmintic, Rx::AtDose, NONE),
    row("oxyclozanide", &[], OtherAnthelmintic, Rx::AtDose, NONE),
    row("triclabendazole", &[], Benzimidazole, Rx::AtDose, NONE),
    row("dewormer", &["dewormers", "wormer", "wormers", "anthelmintic", "anthelmintics", "deworming drug", "deworming medicine", "worm medicine"], OtherAnthelmintic, Rx::AtDose, NONE),
    row("amprolium", &["amprol"], Coccidiostat, Rx::AtDose, NONE),
    row("toltrazuril", &["baycox"], Coccidiostat, Rx::AtDose, NONE),
    row("diclazuril", &[], Coccidiostat, Rx::AtDose, NONE),
    row("monensin", &[], Coccidiostat, Rx::AtDose, NONE),
    row("salinomycin", &[], Coccidiostat, Rx::AtDose, NONE),
    row("coccidiostat", &["coccidiostats", "anticoccidial", "coccidiosis drug", "coccidiosis medicine"], Coccidiostat, Rx::AtDose, NONE),
    // steroids and anti-inflammatories
    row("dexamethasone", &["dexa"], Corticosteroid, Rx::AtDose, NONE),
    row("prednisolone", &["prednisone"], Corticosteroid, Rx::AtDose, NONE),
    row("betamethasone", &[], Corticosteroid, Rx::AtDose, NONE),
    row("steroid", &["steroids", "corticosteroid", "corticosteroids", "cortisone"], Corticosteroid, Rx::AtDose, NONE),
    row("meloxicam", &[], Nsaid, Rx::AtDose, NONE),
    row("flunixin", &[], Nsaid, Rx::AtDose, NONE),
    row("phenylbutazone", &["bute"], Nsaid, Rx::AtDose, Prohibited::Extralabel(US)),
    // human medicines (no veterinary label for food animals)
    row("paracetamol", &["acetaminophen", "panadol"], HumanMedicine, Rx::No, NONE),
    row("ibuprofen", &[], HumanMedicine, Rx::No, NONE),
    row("aspirin", &[], HumanMedicine, Rx::No, NONE),
    row("diclofenac", &[], HumanMedicine, Rx::No, NONE),
    row("tramadol", &[], HumanMedicine, Rx::No, NONE),
    row("codeine", &[], HumanMedicine, Rx::No, NONE),
    row("chloroquine", &[], HumanMedicine, Rx::No, NONE),
    row("artemether", &["lumefantrine", "coartem", "artesunate", "antimalarial", "antimalarials", "malaria drug", "malaria drugs", "malaria tablets"], HumanMedicine, Rx::No, NONE),
    row("quinine", &[], HumanMedicine, Rx::No, NONE),
    row("loperamide", &[], HumanMedicine, Rx::No, NONE),
    row("painkiller", &["painkillers", "pain killer", "pain killers", "pain relief tablets", "cough syrup"], HumanMedicine, Rx::No, NONE),
    // pesticides and biocides: on or near animals only as labelled
    row("ddt", &[], Organochlorine, Rx::No, BANNED),
    row("lindane", &["gammalin", "gamalin", "gammalin 20", "hch"], Organochlorine, Rx::No, BANNED),
    row("aldrin", &["dieldrin", "endrin"], Organochlorine, Rx::No, BANNED),
    row("endosulfan", &["thiodan"], Organochlorine, Rx::No, BANNED),
    row("chlordane", &["heptachlor"], Organochlorine, Rx::No, BANNED),
    row("dichlorvos", &["ddvp", "sniper", "nuvan"], Organophosphate, Rx::No, NONE),
    row("chlorpyrifos", &["dursban"], Organophosphate, Rx::No, NONE),
    row("diazinon", &[], Organophosphate, Rx::No, NONE),
    row("malathion", &[], Organophosphate, Rx::No, NONE),
    row("dimethoate", &[], Organophosphate, Rx::No, NONE),
    row("organophosphate", &["organophosphates"], Organophosphate, Rx::No, NONE),
    row("carbofuran", &["furadan"], Carbamate, Rx::No, NONE),
    row("carbaryl", &["sevin"], Carbamate, Rx::No, NONE),
    row("cypermethrin", &[], Pyrethroid, Rx::No, NONE),
    row("deltamethrin", &[], Pyrethroid, Rx::No, NONE),
    row("lambda-cyhalothrin", &["lambda cyhalothrin", "karate"], Pyrethroid, Rx::No, NONE),
    row("paraquat", &["gramoxone"], Herbicide, Rx::No, NONE),
    row("glyphosate", &["roundup"], Herbicide, Rx::No, NONE),
    row("atrazine", &["2,4-d"], Herbicide, Rx::No, NONE),
    row("herbicide", &["herbicides", "weedkiller", "weed killer"], Herbicide, Rx::No, NONE),
    row("insecticide", &["insecticides", "pesticide", "pesticides", "insect spray", "mosquito spray", "crop spray", "farm chemical", "farm chemicals", "raid", "baygon", "otapiapia"], Organophosphate, Rx::No, NONE),
    row("rat poison", &["rodenticide", "brodifacoum", "zinc phosphide", "ratsbane"], Rodenticide, Rx::No, NONE),
    row("kerosene", &["paraffin oil", "petrol", "diesel", "engine oil", "used oil", "sump oil"], Chemical, Rx::No, NONE),
    // unnamed medicines
    row("medicine", &["medicines", "medication", "drug", "drugs", "injection", "injections", "jab", "tablet", "tablets", "capsule", "capsules", "antibiotic powder"], Unnamed, Rx::AtDose, NONE),
    row("antibiotic", &["antibiotics", "anti-biotic", "anti-biotics", "antimicrobial", "antimicrobials", "antibacterial", "antibacterials"], OtherAntimicrobial, Rx::Always, NONE),
];

/// Classes named by their endings, for antimicrobials and antiparasitics not in the table.
#[rustfmt::skip]
pub const ENDINGS: &[(&str, Class, Rx, Prohibited)] = &[
    ("nidazole", Nitroimidazole, Rx::Always, BANNED),
    ("nitrofur", Nitrofuran, Rx::Always, BANNED),
    ("floxacin", Fluoroquinolone, Rx::Always, US_EXTRALABEL),
    ("cycline", Tetracycline, Rx::Always, NONE),
    ("cillin", Penicillin, Rx::Always, NONE),
    ("mycin", Aminoglycoside, Rx::Always, NONE),
    ("micin", Aminoglycoside, Rx::Always, NONE),
    ("fenicol", Amphenicol, Rx::Always, NONE),
    ("bendazole", Benzimidazole, Rx::AtDose, NONE),
    ("mectin", Avermectin, Rx::AtDose, NONE),
    ("zuril", Coccidiostat, Rx::AtDose, NONE),
    ("methasone", Corticosteroid, Rx::AtDose, NONE),
];
