//! `farmops`: the operator CLI. Connects as the owner role (`FARMOPS_OWNER_DATABASE_URL`).
//! In AWS, from a host inside the VPC: `FARMOPS_DB_IAM_AUTH=1` and `FARMOPS_DB_TLS=cluster`
//! connect to the cluster endpoint with an IAM token over verified TLS (README "Deploy").
//!
//! Every command prints what it did (JSON where it reports data) and exits non-zero with a
//! clear message on failure. `farmops <command> --help` documents each one.
//! `set-pack` and `payments` are the operator's side of the Paystack top-ups (`farmops::payments`).
//! `clinical-check` needs no database: it screens texts with the clinical-safety rules.
//! `verify` needs none either: it checks an evidence bundle (`export-evidence`) offline.
//!
//! Here: the command line (clap); `run` does each command, `flags` turns flags into the shared
//! crate's values, `verify` checks a bundle offline.

use clap::{Parser, Subcommand};
use farmops::credits;
use uuid::Uuid;

mod flags;
mod run;
mod verify;

use run::run;

#[derive(Parser)]
#[command(name = "farmops", about = "FarmOps operator CLI", version)]
struct Cli {
    /// Owner-role database URL (migrations and operator work).
    #[arg(long, env = "FARMOPS_OWNER_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending migrations (idempotent).
    Migrate,
    /// Create a farm; prints its id. Its time zone (where a budget day starts) is the
    /// default, Africa/Lagos.
    CreateFarm {
        /// Display name.
        name: String,
        /// Use this id instead of a new random one.
        #[arg(long)]
        id: Option<Uuid>,
    },
    /// Add a member (or change their role).
    AddMember {
        farm_id: Uuid,
        user_id: String,
        /// owner, manager, worker or viewer.
        #[arg(long)]
        role: String,
    },
    /// Grant credits to a farm as a lot: spent in order of priority (lower first), then
    /// soonest expiry, then age. The same --idempotency-key never grants twice.
    Grant {
        farm_id: Uuid,
        #[arg(allow_negative_numbers = true)]
        amount: i64,
        #[arg(long)]
        reason: String,
        /// Who grants (recorded in the ledger).
        #[arg(long, default_value = "operator")]
        actor: String,
        /// paid or promotional.
        #[arg(long, default_value = "paid")]
        category: String,
        /// 0 to 100; lower is spent first.
        #[arg(long, default_value_t = credits::lots::DEFAULT_PRIORITY)]
        priority: i32,
        /// When the lot takes effect (RFC 3339; default now).
        #[arg(long)]
        effective_at: Option<String>,
        /// When what is left of the lot expires (RFC 3339, in the future; default never).
        #[arg(long)]
        expires_at: Option<String>,
        /// operator or promotion (payments grant through the billing function).
        #[arg(long, default_value = "operator")]
        source: String,
        /// Grants with the same key on a farm grant once (default: a new key).
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// A farm's credit lots: remaining, expiry, source, status (JSON lines, spend order).
    Grants { farm_id: Uuid },
    /// Run the reconcile step once, exactly what the schedule runs: expire abandoned runs,
    /// close expired lots, checkpoint ledgers, sign moved evidence chain heads. Settings from
    /// FARMOPS_MAX_RUN_SECS, FARMOPS_CHECKPOINT_* and FARMOPS_EVIDENCE_* as in the function.
    Reconcile,
    /// Set a farm's AI autonomy: the tier, the record types `auto` may write directly, and
    /// per-record-type overrides. Sale, expense and mortality stay drafts whatever is set.
    SetAutonomy {
        farm_id: Uuid,
        /// suggest, draft or auto.
        #[arg(long)]
        tier: String,
        /// Record types the auto tier may write directly, comma-separated (e.g. feed_use,water).
        #[arg(long, default_value = "", value_delimiter = ',')]
        auto_categories: Vec<String>,
        /// Per-record-type tier, repeatable: --override note=suggest
        #[arg(long = "override")]
        overrides: Vec<String>,
    },
    /// Set or remove a member's credit caps: a hold that would take the member's charged plus
    /// held credits in the day or month (farm time zone; a run counts in the window it was
    /// opened in) past a cap is refused. A flag left out keeps that cap; `none` removes it.
    /// Caps are whole credits from 0 to 1000000000. Recorded in the farm's events.
    SetBudget {
        farm_id: Uuid,
        user_id: String,
        /// Credits per day, or `none` to remove the daily cap.
        #[arg(long, allow_negative_numbers = true)]
        daily: Option<String>,
        /// Credits per month, or `none` to remove the monthly cap.
        #[arg(long, allow_negative_numbers = true)]
        monthly: Option<String>,
        /// Who sets it (recorded in the farm's events).
        #[arg(long, default_value = "operator")]
        actor: String,
    },
    /// Expire reservations older than the given age that never settled (refunds them).
    Expire {
        /// Age in seconds (default 900: longer than any function timeout).
        #[arg(long, default_value_t = 900)]
        older_than_secs: i64,
    },
    /// Create a credit pack a farm can buy through Paystack, or change one: CREDITS credits for
    /// PRICE_KOBO kobo (100 kobo = 1 naira). A Paystack payment for the pack is granted only when
    /// it paid exactly the price; events already recorded keep what they were.
    SetPack {
        /// 1 to 63 of a-z, 0-9, '-' and '_' (the `pack` of a payment's metadata).
        name: String,
        #[arg(long)]
        credits: i64,
        #[arg(long)]
        price_kobo: i64,
    },
    /// The Paystack events received, oldest first, as JSON lines: what was granted or clawed
    /// back, and why the rest was refused (`verdict`, `detail`).
    Payments {
        /// Only the events of this farm.
        #[arg(long)]
        farm: Option<Uuid>,
        /// Include each event's raw body.
        #[arg(long)]
        raw: bool,
    },
    /// Check the ledger invariant (balance = last balance_after = sum of deltas) for one
    /// farm or, without an id, for every farm. Exits 1 if any farm breaks it.
    Audit { farm_id: Option<Uuid> },
    /// Screen texts with the clinical-safety rules: JSON lines {"id", "text"} on stdin, one
    /// line per input on stdout: {"id", "passed", "violations": [{"rule", "category",
    /// "span", "prohibited_where"?}]} (prohibited_where: for a prohibited substance, where it
    /// is prohibited), or {"id"?, "line", "error"} for an invalid line (the batch goes on).
    /// Needs no database. Exits 0 when every line was screened, whatever the verdicts.
    ClinicalCheck,
    /// Sign the chain head of every farm whose evidence chain grew since its last signed
    /// checkpoint (what reconcile does), with the local key file (PKCS#8 PEM, P-256).
    SignCheckpoints {
        #[arg(long, env = "FARMOPS_EVIDENCE_KEY_FILE")]
        key_file: std::path::PathBuf,
    },
    /// Write a farm's evidence bundle (docs/evidence-chain.md): the chain entries from --from to
    /// --to (default: all) with their hashes and the fields re-derived from the live rows, the
    /// signed checkpoints covering them, and the signing key when --key-file or --public-key
    /// names it. `farmops verify` checks it offline.
    ExportEvidence {
        farm_id: Uuid,
        #[arg(long)]
        from: Option<i64>,
        #[arg(long)]
        to: Option<i64>,
        #[arg(long)]
        out: std::path::PathBuf,
        /// The public key (PEM) to name in the bundle.
        #[arg(long)]
        public_key: Option<std::path::PathBuf>,
        /// The local signing key: its public key is named in the bundle.
        #[arg(long, env = "FARMOPS_EVIDENCE_KEY_FILE", conflicts_with = "public_key")]
        key_file: Option<std::path::PathBuf>,
    },
    /// Verify an evidence bundle with no database: chain continuity, every hash, every
    /// checkpoint's signature with the key you trust (given out of band), later checkpoints
    /// extending earlier ones, ledger balance arithmetic, no row outside the chain. Exits 0
    /// when all holds; otherwise 1, naming the first bad sequence number and what is wrong.
    Verify {
        file: std::path::PathBuf,
        /// The trusted public key (PEM file).
        #[arg(long, required_unless_present = "fingerprint")]
        public_key: Option<std::path::PathBuf>,
        /// The trusted key's fingerprint (hex SHA-256 of its DER SubjectPublicKeyInfo): the
        /// bundle's key must have it.
        #[arg(long, conflicts_with = "public_key")]
        fingerprint: Option<String>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
