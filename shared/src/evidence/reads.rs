//! The evidence routes' reads, each with its role check (the handler only maps the error).
//! Refusals come in the order the routes always answered: not a member or the wrong role
//! first, then the request's own faults.

use super::{
    CreditStatement, EvidencePage, EvidenceQuery, Format, credit_statement, evidence_page,
    export::export_bundle, list_drafts, negotiate, parse_draft_status,
};
use crate::{
    db::TenantTx,
    drafts::Draft,
    error::{Error, Result},
    evidence::chain::Bundle,
    membership::{Role, member_role, require_role},
};

/// `GET /farms/{farm_id}/evidence` for `user` ([`Role::may_read_evidence`]): the page the
/// query string asks for, in the representation `accept` asks for.
pub async fn read_evidence<'a>(
    tx: &TenantTx,
    user: &str,
    param: impl Fn(&str) -> Option<&'a str>,
    accept: Option<&str>,
) -> Result<(Format, EvidencePage)> {
    require_role(tx, user, "read the evidence", Role::may_read_evidence).await?;
    let query = EvidenceQuery::parse(param)?;
    let format = negotiate(accept)?;
    Ok((format, evidence_page(tx, &query).await?))
}

/// `GET /farms/{farm_id}/credits` for `user` ([`Role::may_read_credits`]).
pub async fn read_credits(tx: &TenantTx, user: &str) -> Result<CreditStatement> {
    require_role(tx, user, "read the credits", Role::may_read_credits).await?;
    credit_statement(tx).await
}

/// `GET /farms/{farm_id}/drafts?status=` for `user` (every member).
pub async fn read_drafts(tx: &TenantTx, user: &str, status: Option<&str>) -> Result<Vec<Draft>> {
    member_role(tx, user).await?;
    list_drafts(tx, parse_draft_status(status)?).await
}

/// `GET /farms/{farm_id}/evidence/export?from=&to=` for `user`
/// ([`Role::may_export_evidence`]): the chain's bundle from sequence `from` to `to` (each 1 or
/// more; a bad one is a 400).
pub async fn export_evidence<'a>(
    tx: &TenantTx,
    user: &str,
    param: impl Fn(&str) -> Option<&'a str>,
) -> Result<Bundle> {
    require_role(tx, user, "export the evidence", Role::may_export_evidence).await?;
    let seq = |name: &'static str| -> Result<Option<i64>> {
        match param(name) {
            None => Ok(None),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if n >= 1 => Ok(Some(n)),
                _ => Err(Error::BadRequest(format!(
                    "{name} must be a sequence number (1 or more)"
                ))),
            },
        }
    };
    let (from, to) = (seq("from")?, seq("to")?);
    export_bundle(tx, from, to, None, None).await
}
