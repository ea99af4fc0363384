//! Metered embedding calls shared by adding a document and the reembed sweep.

use crate::{
    credits::{self, Feature, MeteredRun, NextCall, RunSpec},
    db::{Db, TenantTx},
    embed::{Embedder, token_upper_bound},
    error::{Error, Result},
};

/// Opens the embedding run of `texts` in `tx`, holding exactly what their token bound costs
/// (an embedding is one call; its output is not metered).
pub(super) async fn open_embedding(
    db: &Db,
    tx: TenantTx,
    feature: Feature,
    model: &str,
    user_id: Option<&str>,
    summary: &str,
    texts: &[String],
) -> Result<MeteredRun> {
    let spec = RunSpec {
        feature,
        model,
        price: credits::priced(model)?,
        user_id,
        request_summary: Some(summary),
    };
    let tokens: u64 = texts.iter().map(|t| token_upper_bound(t)).sum();
    let (run, _) = MeteredRun::open(db, tx, spec, NextCall::input_only(tokens)).await?;
    Ok(run)
}

/// Embeds `texts`: one vector per text, or [`Error::ModelFailed`].
pub(super) async fn embed_checked(
    embedder: &dyn Embedder,
    texts: &[String],
) -> Result<crate::embed::Embedded> {
    let embedded = embedder.embed(texts).await?;
    if embedded.vectors.len() != texts.len() {
        return Err(Error::ModelFailed(
            "embedder returned the wrong number of vectors".into(),
        ));
    }
    Ok(embedded)
}

/// Embeds `texts` within `run`: the usage is recorded; a failure (or the wrong number of
/// vectors) settles the run as failed.
pub(super) async fn embed_metered(
    db: &Db,
    embedder: &dyn Embedder,
    run: &mut MeteredRun,
    texts: &[String],
) -> Result<crate::embed::Embedded> {
    match embed_checked(embedder, texts).await {
        Ok(e) => {
            run.record(crate::model::Usage {
                input_tokens: e.input_tokens,
                output_tokens: 0,
            });
            Ok(e)
        }
        Err(e) => {
            run.settle_failed(db, &e.to_string()).await?;
            Err(e)
        }
    }
}
