//! `farmops`: the operator CLI. Connects as the owner role (`FARMOPS_OWNER_DATABASE_URL`).
//! In AWS, from a host inside the VPC: `FARMOPS_DB_IAM_AUTH=1` and `FARMOPS_DB_TLS=cluster`
//! connect to the cluster endpoint with an IAM token over verified TLS (README "Deploy").
//!
//! Every command prints what it did (JSON where it reports data) and exits non-zero with a
//! clear message on failure. `farmops <command> --help` documents each one.
//! `set-pack` and `payments` are the operator's side of the Paystack top-ups (`farmops::payments`).
//! `clinical-check` needs no database: it screens texts with the clinical-safety rules.
//! `verify` needs none either: it checks an evidence bundle (`export-evidence`) offline.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use farmops::{
    autonomy,
    config::{DatabaseConfig, Env},
    credits, evidence,
    evidence::signing::KeyFileSigner,
};
use uuid::Uuid;

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
    /// "span"}]}, or {"id"?, "line", "error"} for an invalid line (the batch goes on). Needs
    /// no database. Exits 0 when every line was screened, whatever the verdicts.
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

async fn run(cli: Cli) -> Result<()> {
    if let Command::ClinicalCheck = cli.command {
        let summary =
            farmops::clinical::batch::screen(std::io::stdin().lock(), std::io::stdout().lock())
                .context("screening stdin")?;
        eprintln!(
            "{} passed, {} failed, {} invalid",
            summary.passed, summary.failed, summary.invalid
        );
        return Ok(());
    }
    if let Command::Verify {
        file,
        public_key,
        fingerprint,
    } = &cli.command
    {
        return verify_bundle(file, public_key.as_deref(), fingerprint.as_deref());
    }
    // The URL from the flag or the environment; TLS and IAM settings from `FARMOPS_DB_*`.
    let url = cli
        .database_url
        .clone()
        .context("no database: set FARMOPS_OWNER_DATABASE_URL or pass --database-url")?;
    let config = DatabaseConfig::from_env_with_url(
        &Env(|k| match k {
            "FARMOPS_OWNER_DATABASE_URL" => Some(url.clone()),
            _ => std::env::var(k).ok(),
        }),
        "FARMOPS_OWNER_DATABASE_URL",
    )
    .context("database settings")?;
    let db = farmops::db::connect_from_config(&config)
        .await
        .context("database connection")?;
    match cli.command {
        Command::Migrate => {
            let client = db.client().await.context("connecting as the owner")?;
            let applied = farmops::db::migrate::migrate(&client)
                .await
                .map_err(explain)?;
            println!("{}", serde_json::json!({ "applied": applied }));
        }
        Command::CreateFarm { name, id } => {
            let client = db.client().await?;
            let id = id.unwrap_or_else(Uuid::new_v4);
            client
                .query_typed(
                    "INSERT INTO farms (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                    &[
                        (&id, farmops::db::Type::UUID),
                        (&name, farmops::db::Type::TEXT),
                    ],
                )
                .await
                .context("creating the farm")?;
            println!("{}", serde_json::json!({ "farm_id": id, "name": name }));
        }
        Command::AddMember {
            farm_id,
            user_id,
            role,
        } => {
            if farmops::membership::Role::parse(&role).is_none() {
                bail!("role must be owner, manager, worker or viewer");
            }
            let client = db.client().await?;
            let rows = client
                .query_typed(
                    "INSERT INTO farm_members (farm_id, user_id, role) SELECT id, $2, $3 FROM farms WHERE id = $1
                     ON CONFLICT (farm_id, user_id) DO UPDATE SET role = EXCLUDED.role RETURNING role",
                    &[(&farm_id, farmops::db::Type::UUID), (&user_id, farmops::db::Type::TEXT), (&role, farmops::db::Type::TEXT)],
                )
                .await
                .context("adding the member")?;
            if rows.is_empty() {
                bail!("no farm {farm_id}");
            }
            println!(
                "{}",
                serde_json::json!({ "farm_id": farm_id, "user_id": user_id, "role": role })
            );
        }
        Command::Grant {
            farm_id,
            amount,
            reason,
            actor,
            category,
            priority,
            effective_at,
            expires_at,
            source,
            idempotency_key,
        } => {
            let lot = new_lot(
                amount,
                &reason,
                &actor,
                &category,
                priority,
                effective_at.as_deref(),
                expires_at.as_deref(),
                &source,
                idempotency_key,
            )?;
            let tx = db.tenant(farm_id).await?;
            let granted = credits::grant_lot(&tx, &lot).await.map_err(explain)?;
            tx.commit().await.map_err(explain)?;
            println!(
                "{}",
                serde_json::json!({
                    "farm_id": farm_id,
                    "lot_id": granted.lot_id,
                    "granted": if granted.granted { amount } else { 0 },
                    "duplicate": !granted.granted,
                    "balance": granted.balance,
                })
            );
        }
        Command::Grants { farm_id } => {
            let tx = db.tenant(farm_id).await?;
            let lots = credits::list_lots(&tx).await.map_err(explain)?;
            tx.commit().await.map_err(explain)?;
            for lot in lots {
                println!("{}", serde_json::to_string(&lot)?);
            }
        }
        Command::Reconcile => {
            let config = farmops::reconcile::ReconcileConfig::from_env()?;
            let signer = evidence::signing::signer_from_env(|k| std::env::var(k).ok())
                .await
                .map_err(explain)?;
            let state = farmops::reconcile::ReconcileState {
                db,
                config,
                alerts: farmops::credits::alerts::AlertBus::from_env().await,
                signer,
            };
            let outcome = farmops::reconcile::run_once(&state)
                .await
                .map_err(explain)?;
            println!("{}", serde_json::to_string(&outcome)?);
        }
        Command::SetAutonomy {
            farm_id,
            tier,
            auto_categories,
            overrides,
        } => {
            let settings = parse_autonomy(&tier, &auto_categories, &overrides)?;
            let tx = db.tenant(farm_id).await?;
            autonomy::save_autonomy(&tx, &settings)
                .await
                .map_err(explain)?;
            tx.commit().await.map_err(explain)?;
            println!(
                "{}",
                serde_json::json!({ "farm_id": farm_id, "autonomy": settings })
            );
        }
        Command::SetBudget {
            farm_id,
            user_id,
            daily,
            monthly,
            actor,
        } => {
            let change = parse_budget(daily.as_deref(), monthly.as_deref())?;
            let tx = db.tenant(farm_id).await?;
            let budget = farmops::farm::budgets::set_as_operator(&tx, &actor, &user_id, change)
                .await
                .map_err(explain)?;
            tx.commit().await.map_err(explain)?;
            println!(
                "{}",
                serde_json::json!({ "farm_id": farm_id, "budget": budget })
            );
        }
        Command::Expire { older_than_secs } => {
            let cutoff = chrono::Utc::now() - chrono::Duration::seconds(older_than_secs);
            let mut total = credits::Expired::default();
            for farm in credits::farms_with_open_reservations(&db, cutoff)
                .await
                .map_err(explain)?
            {
                let tx = db.tenant(farm).await?;
                let expired = credits::expire_reservations(&tx, cutoff)
                    .await
                    .map_err(explain)?;
                tx.commit().await.map_err(explain)?;
                total.runs += expired.runs;
                total.credits_refunded += expired.credits_refunded;
                println!(
                    "{}",
                    serde_json::json!({ "farm_id": farm, "expired": expired })
                );
            }
            println!("{}", serde_json::json!({ "total": total }));
        }
        Command::Audit { farm_id } => {
            let farms = match farm_id {
                Some(id) => vec![id],
                None => {
                    let client = db.client().await?;
                    client
                        .query_typed("SELECT id FROM farms ORDER BY name", &[])
                        .await?
                        .iter()
                        .map(|r| r.get(0))
                        .collect()
                }
            };
            let mut broken = 0;
            for farm in farms {
                let tx = db.tenant(farm).await?;
                let audit = credits::audit_ledger(&tx).await.map_err(explain)?;
                tx.commit().await.map_err(explain)?;
                broken += usize::from(!audit.holds);
                println!("{}", serde_json::to_string(&audit)?);
            }
            if broken > 0 {
                bail!("{broken} farm(s) break the ledger invariant");
            }
        }
        Command::SetPack {
            name,
            credits,
            price_kobo,
        } => {
            let pack = farmops::payments::set_pack(
                &db,
                &farmops::payments::CreditPack {
                    name,
                    credits,
                    price_kobo,
                },
            )
            .await
            .map_err(explain)?;
            println!("{}", serde_json::to_string(&pack)?);
        }
        Command::SignCheckpoints { key_file } => {
            let signer = KeyFileSigner::from_file(&key_file).map_err(explain)?;
            for signed in evidence::signing::sign_due(&db, &signer)
                .await
                .map_err(explain)?
            {
                println!("{}", serde_json::to_string(&signed)?);
            }
        }
        Command::ExportEvidence {
            farm_id,
            from,
            to,
            out,
            public_key,
            key_file,
        } => {
            let pem = match (public_key, key_file) {
                (Some(path), _) => Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?,
                ),
                (None, Some(path)) => Some(
                    KeyFileSigner::from_file(&path)
                        .map_err(explain)?
                        .public_key_pem(),
                ),
                (None, None) => None,
            };
            let fingerprint = match &pem {
                Some(pem) => Some(
                    evidence::chain::public_key_from_pem(pem)
                        .map_err(anyhow::Error::msg)?
                        .1,
                ),
                None => None,
            };
            let tx = db.tenant(farm_id).await?;
            let bundle = evidence::export::export_bundle(&tx, from, to, fingerprint, pem)
                .await
                .map_err(explain)?;
            tx.commit().await.map_err(explain)?;
            std::fs::write(&out, serde_json::to_vec_pretty(&bundle)?)
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{}",
                serde_json::json!({
                    "farm_id": farm_id,
                    "from_seq": bundle.from_seq,
                    "to_seq": bundle.to_seq,
                    "entries": bundle.entries.len(),
                    "checkpoints": bundle.checkpoints.len(),
                    "unchained": bundle.unchained.len(),
                    "out": out,
                })
            );
        }
        Command::Payments { farm, raw } => {
            for event in farmops::payments::payment_events(&db, farm, raw)
                .await
                .map_err(explain)?
            {
                println!("{}", serde_json::to_string(&event)?);
            }
        }
        // Answered above, before connecting.
        Command::ClinicalCheck | Command::Verify { .. } => {}
    }
    Ok(())
}

/// The grant's flags as a lot, checked by the same rules as the database's.
#[allow(clippy::too_many_arguments)]
fn new_lot(
    amount: i64,
    reason: &str,
    actor: &str,
    category: &str,
    priority: i32,
    effective_at: Option<&str>,
    expires_at: Option<&str>,
    source: &str,
    idempotency_key: Option<String>,
) -> Result<credits::NewLot> {
    let Some(category) = credits::LotCategory::parse(category) else {
        bail!("--category must be paid or promotional, not {category:?}");
    };
    let source = match credits::LotSource::parse(source) {
        Some(s @ (credits::LotSource::Operator | credits::LotSource::Promotion)) => s,
        _ => bail!("--source must be operator or promotion, not {source:?}"),
    };
    let time = |flag: &str, v: Option<&str>| -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        v.map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.to_utc())
                .with_context(|| format!("{flag} must be an RFC 3339 time, not {v:?}"))
        })
        .transpose()
    };
    let mut lot = credits::NewLot::operator(amount, actor, reason);
    lot.category = category;
    lot.priority = priority;
    lot.effective_at = time("--effective-at", effective_at)?;
    lot.expires_at = time("--expires-at", expires_at)?;
    lot.source = source;
    if let Some(key) = idempotency_key {
        lot.idempotency_key = key;
    }
    lot.validate(chrono::Utc::now()).map_err(explain)?;
    Ok(lot)
}

/// The flags as an [`autonomy::AutonomyChange`], validated by the same rules as the API's
/// `PUT /farms/{farm_id}/settings/autonomy` (known names; the floor cannot be lifted).
fn parse_autonomy(
    tier: &str,
    categories: &[String],
    overrides: &[String],
) -> Result<autonomy::AutonomySettings> {
    let mut pairs = std::collections::BTreeMap::new();
    for o in overrides {
        let (t, tier) = o
            .split_once('=')
            .with_context(|| format!("--override takes type=tier, got {o:?}"))?;
        pairs.insert(t.trim().to_string(), tier.trim().to_string());
    }
    let change = autonomy::AutonomyChange {
        tier: Some(tier.to_string()),
        auto_categories: Some(
            categories
                .iter()
                .filter(|c| !c.trim().is_empty())
                .cloned()
                .collect(),
        ),
        overrides: Some(pairs),
    };
    let valid = change.validate().map_err(explain)?;
    Ok(valid.apply(&autonomy::AutonomySettings::default()))
}

/// `farmops verify`: reads the bundle and the trusted key, checks everything offline.
fn verify_bundle(
    file: &std::path::Path,
    public_key: Option<&std::path::Path>,
    fingerprint: Option<&str>,
) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let bundle: evidence::chain::Bundle = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a bundle", file.display()))?;
    let trusted = match (public_key, fingerprint) {
        (Some(path), _) => evidence::chain::TrustedKey::Pem(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        (None, Some(fp)) => evidence::chain::TrustedKey::Fingerprint(fp.to_string()),
        (None, None) => bail!("give the trusted key: --public-key PEM or --fingerprint HEX"),
    };
    match evidence::chain::verify(&bundle, &trusted) {
        Ok(verified) => {
            println!("{}", serde_json::to_string(&verified)?);
            Ok(())
        }
        Err(failure) => bail!("verification failed: {failure}"),
    }
}

/// `--daily` and `--monthly` as the API's body: a number, or `none` (null: remove the cap).
fn parse_budget(
    daily: Option<&str>,
    monthly: Option<&str>,
) -> Result<farmops::farm::budgets::BudgetChange> {
    let mut body = serde_json::Map::new();
    for (name, value) in [("daily", daily), ("monthly", monthly)] {
        let Some(v) = value else { continue };
        let v = match v {
            "none" => serde_json::Value::Null,
            n => match n.parse::<i64>() {
                Ok(n) => n.into(),
                Err(_) => bail!("--{name} must be a whole number of credits or none, not {n:?}"),
            },
        };
        body.insert(name.to_string(), v);
    }
    if body.is_empty() {
        bail!("name --daily and/or --monthly (a number of credits, or none to remove the cap)");
    }
    farmops::farm::budgets::BudgetChange::parse(&serde_json::Value::Object(body)).map_err(explain)
}

/// The shared crate's error with its cause chain, for an operator's eyes.
fn explain(e: farmops::Error) -> anyhow::Error {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    anyhow::anyhow!(message)
}
