//! Deploy checks that run offline: the SAM template against the workspace and the design,
//! the RDS IAM token, the assumed-role path to Bedrock (local STS + stub), verified TLS to a
//! throwaway PostgreSQL with certificates made here.

mod admin_secret;
mod assume_role;
mod iam_token;
mod moto;
mod passwords;
mod paystack_secret;
mod pinning;
mod template;
mod tls;
