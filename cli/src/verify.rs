//! `farmops verify`: an evidence bundle checked offline against a trusted key (no database).

use anyhow::{Context, Result, bail};
use farmops::evidence;

/// `farmops verify`: reads the bundle and the trusted key, checks everything offline.
pub(crate) fn verify_bundle(
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
