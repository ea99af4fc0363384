//! The lifecycle statuses the schema allows (`CHECK (status IN (...))` in `migrations/`), as
//! enums: parsed once where a row is read ([`FromSql`]) or a JSON child is deserialised, and
//! written back with [`as_str`](DraftStatus::as_str). They serialise as today's lowercase
//! strings.

use std::{error::Error as StdError, fmt};

use serde::{Deserialize, Serialize};
use tokio_postgres::types::{FromSql, Type};

macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            /// Every status, in the order the schema lists them.
            pub const ALL: &[$name] = &[$($name::$variant),+];

            /// The status as the database and the API spell it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The status spelt `s`, if there is one.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl TryFrom<&str> for $name {
            type Error = String;

            fn try_from(s: &str) -> std::result::Result<$name, String> {
                $name::parse(s).ok_or_else(|| format!(concat!("unknown ", $what, " status {}"), s))
            }
        }

        impl<'a> FromSql<'a> for $name {
            fn from_sql(
                ty: &Type,
                raw: &'a [u8],
            ) -> std::result::Result<$name, Box<dyn StdError + Sync + Send>> {
                let s = <&str as FromSql>::from_sql(ty, raw)?;
                Ok($name::try_from(s)?)
            }

            fn accepts(ty: &Type) -> bool {
                <&str as FromSql>::accepts(ty)
            }
        }
    };
}

status_enum!(
    /// Where a draft stands (`assistant_drafts.status`): pending until a human confirms or
    /// discards it, once.
    DraftStatus, "draft" {
        Pending => "pending",
        Confirmed => "confirmed",
        Discarded => "discarded",
    }
);

status_enum!(
    /// Where a recommendation stands (`ai_recommendations.status`): pending until a human
    /// approves or rejects it, once.
    RecommendationStatus, "recommendation" {
        Pending => "pending",
        Approved => "approved",
        Rejected => "rejected",
    }
);

status_enum!(
    /// Where a metered AI run stands (`ai_runs.status`): reserved while open, then settled
    /// (succeeded or failed) or expired by reconcile.
    RunStatus, "run" {
        Reserved => "reserved",
        Succeeded => "succeeded",
        Failed => "failed",
        Expired => "expired",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_text_and_json() {
        for s in DraftStatus::ALL {
            assert_eq!(DraftStatus::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in RecommendationStatus::ALL {
            assert_eq!(RecommendationStatus::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::try_from(s.as_str()), Ok(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(
            RunStatus::try_from("done"),
            Err("unknown run status done".to_string())
        );
        assert_eq!(DraftStatus::parse("Pending"), None);
    }
}
