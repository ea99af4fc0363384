//! The commands: connects (except for the offline ones) and does what the command line asked.

use anyhow::{Context, Result, bail};
use farmops::{
    autonomy,
    config::{DatabaseConfig, Env},
    credits, evidence,
    evidence::signing::KeyFileSigner,
};
use uuid::Uuid;

use crate::{
    Cli, Command,
    flags::{explain, new_lot, parse_autonomy, parse_budget},
    verify::verify_bundle,
};

pub(crate) async fn run(cli: Cli) -> Result<()> {
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
            let aws = farmops::aws::ColdStartAws::default();
            let signer = evidence::signing::signer_from_env(|k| std::env::var(k).ok(), &aws)
                .await
                .map_err(explain)?;
            let state = farmops::reconcile::ReconcileState {
                db,
                config,
                alerts: farmops::credits::alerts::AlertBus::from_env(&aws).await,
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
