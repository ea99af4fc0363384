//! template.yaml: every function is a binary of this workspace (and every function crate is
//! deployed), every route of the design is mapped, the schedules exist, nothing enables
//! the development identity header, and Paystack's webhook is the one route without a JWT,
//! with its secret key in Secrets Manager only.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The template, with CloudFormation's short tags (`!Ref`, `!Sub`, ...) kept as tagged values.
fn template() -> Value {
    let text = std::fs::read_to_string(root().join("template.yaml")).expect("template.yaml");
    serde_yaml::from_str(&text).expect("template.yaml is YAML")
}

/// `!Ref X`
fn is_ref(v: &Value) -> bool {
    matches!(v, Value::Tagged(t) if t.tag == "!Ref")
}

fn resources(t: &Value) -> &serde_yaml::Mapping {
    t["Resources"].as_mapping().expect("Resources")
}

fn functions(t: &Value) -> BTreeMap<String, &Value> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(k, r)| (k.as_str().unwrap().to_string(), r))
        .collect()
}

/// Every `functions/<name>` crate whose package and binary are both `<name>`.
fn workspace_binaries() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("functions")).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = dir.file_name().unwrap().to_str().unwrap().to_string();
        let declares = manifest.contains(&format!("name = \"{name}\""));
        if declares && dir.join("src/main.rs").exists() {
            out.insert(name);
        }
    }
    out
}

/// (METHOD, path) of every HttpApi event, with the function's binary.
fn routes(t: &Value) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for r in functions(t).values() {
        let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        if let Some(events) = r["Properties"]["Events"].as_mapping() {
            for e in events.values().filter(|e| e["Type"] == "HttpApi") {
                let p = &e["Properties"];
                let key = (
                    p["Method"].as_str().unwrap().to_uppercase(),
                    p["Path"].as_str().unwrap().to_string(),
                );
                assert!(
                    out.insert(key.clone(), binary.to_string()).is_none(),
                    "route {key:?} mapped twice"
                );
            }
        }
    }
    out
}

/// Routes the design names that open issues have still to build (the tamper-evidence issue:
/// the signed export). Each must be absent from the template: when one lands, it moves to
/// [`DESIGN_ROUTES`].
const NOT_YET_BUILT: &[(&str, &str)] = &[];

/// The one route without the JWT authorizer: Paystack calls it, its signature authenticates it.
const PAYSTACK_WEBHOOK: (&str, &str) = ("POST", "/payments/paystack");

/// The design's routes (../shared/DESIGN.md table) plus the ones the issues added.
const DESIGN_ROUTES: &[(&str, &str, &str)] = &[
    ("POST", "/farms/{farm_id}/chat", "chat"),
    ("POST", "/farms/{farm_id}/runs/{run_id}/feedback", "chat"),
    (
        "POST",
        "/farms/{farm_id}/drafts/{draft_id}/confirm",
        "confirm-draft",
    ),
    (
        "POST",
        "/farms/{farm_id}/recommendations/{id}/approve",
        "confirm-draft",
    ),
    (
        "POST",
        "/farms/{farm_id}/drafts/{draft_id}/discard",
        "discard-draft",
    ),
    (
        "POST",
        "/farms/{farm_id}/recommendations/{id}/reject",
        "discard-draft",
    ),
    ("POST", "/farms/{farm_id}/documents", "reembed"),
    ("DELETE", "/farms/{farm_id}/documents/{id}", "reembed"),
    ("POST", "/farms/{farm_id}/reembed", "reembed"),
    ("GET", "/farms/{farm_id}/evidence", "evidence"),
    ("GET", "/farms/{farm_id}/drafts", "evidence"),
    ("GET", "/farms/{farm_id}/credits", "evidence"),
    // issue 21: the API an app is built on (reads in evidence, writes in farm)
    ("GET", "/farms/{farm_id}/conversations", "evidence"),
    (
        "GET",
        "/farms/{farm_id}/conversations/{id}/messages",
        "evidence",
    ),
    ("GET", "/farms/{farm_id}/recommendations", "evidence"),
    ("GET", "/farms/{farm_id}/records", "evidence"),
    ("GET", "/farms/{farm_id}/memories", "evidence"),
    ("GET", "/farms/{farm_id}/settings", "evidence"),
    ("GET", "/farms/{farm_id}/members", "evidence"),
    ("GET", "/farms/{farm_id}/grants", "evidence"),
    // issue 18: member budgets
    (
        "GET",
        "/farms/{farm_id}/members/{user_id}/usage",
        "evidence",
    ),
    ("PUT", "/farms/{farm_id}/members/{user_id}/budget", "farm"),
    ("PUT", "/farms/{farm_id}/alerts", "farm"),
    ("PUT", "/farms/{farm_id}/settings/autonomy", "farm"),
    ("PUT", "/farms/{farm_id}/members/{user_id}", "farm"),
    ("DELETE", "/farms/{farm_id}/members/{user_id}", "farm"),
    ("DELETE", "/farms/{farm_id}/memories/{id}", "farm"),
    // issue 17: Paystack top-ups
    ("POST", "/payments/paystack", "billing"),
    // issue 19: the evidence chain's bundle
    ("GET", "/farms/{farm_id}/evidence/export", "evidence"),
];

const FUNCTIONS: &[&str] = &[
    "chat",
    "confirm-draft",
    "discard-draft",
    "reembed",
    "evidence",
    "farm",
    "billing",
    "distill-memories",
    "reconcile-credits",
    "migrate",
];

#[test]
fn every_template_function_is_a_workspace_binary_and_vice_versa() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"][0], "arm64");
    let mut deployed = BTreeSet::new();
    for (id, r) in functions(&t) {
        assert_eq!(r["Metadata"]["BuildMethod"], "rust-cargolambda", "{id}");
        assert_eq!(
            r["Properties"]["CodeUri"], ".",
            "{id}: one shared target directory"
        );
        assert!(
            is_ref(&r["Properties"]["LoggingConfig"]["LogGroup"]),
            "{id}: own log group"
        );
        let binary = r["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: BuildProperties.Binary"));
        deployed.insert(binary.to_string());
    }
    let expected: BTreeSet<String> = FUNCTIONS.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        deployed, expected,
        "the template deploys exactly the design's functions"
    );
    let binaries = workspace_binaries();
    let missing: Vec<_> = deployed.difference(&binaries).collect();
    assert!(
        missing.is_empty(),
        "template functions with no functions/<name> binary crate: {missing:?}"
    );
    let undeployed: Vec<_> = binaries.difference(&deployed).collect();
    assert!(
        undeployed.is_empty(),
        "function crates not in the template: {undeployed:?}"
    );
}

#[test]
fn every_design_route_is_mapped_to_its_function() {
    let routes = routes(&template());
    for (method, path, function) in DESIGN_ROUTES {
        let got = routes.get(&(method.to_string(), path.to_string()));
        assert_eq!(got.map(String::as_str), Some(*function), "{method} {path}");
    }
    assert_eq!(
        routes.len(),
        DESIGN_ROUTES.len(),
        "no route outside the design: {routes:?}"
    );

    // and the design document itself, where it is present beside the repository
    let design = root().join("../shared/DESIGN.md");
    if let Ok(text) = std::fs::read_to_string(design) {
        // only the route table of "## Functions and routes" (other sections quote AWS's own
        // wire routes, e.g. Bedrock's `POST /model/...`, which are not ours)
        let table = text
            .split("## Functions and routes")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap_or("");
        let mut checked = 0;
        for word in table.split('`') {
            let mut parts = word.split(' ');
            if let (Some(m @ ("GET" | "POST" | "DELETE" | "PUT" | "PATCH")), Some(p), None) =
                (parts.next(), parts.next(), parts.next())
            {
                let built = routes.contains_key(&(m.to_string(), p.to_string()));
                if NOT_YET_BUILT.contains(&(m, p)) {
                    assert!(
                        !built,
                        "{m} {p} is in template.yaml now: take it out of NOT_YET_BUILT"
                    );
                } else {
                    assert!(built, "DESIGN.md route {m} {p} missing from template.yaml");
                }
                checked += 1;
            }
        }
        assert!(
            checked >= 12,
            "read {checked} routes from DESIGN.md's route table"
        );
    }
}

#[test]
fn each_function_has_exactly_its_own_security_group() {
    let t = template();
    assert!(
        t["Globals"]["Function"].get("VpcConfig").is_none(),
        "SAM appends global lists to a function's own: no global security groups"
    );
    for (id, r) in functions(&t) {
        let vpc = &r["Properties"]["VpcConfig"];
        let groups = vpc["SecurityGroupIds"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{id}"));
        assert_eq!(groups.len(), 1, "{id}");
        let expected = if id == "MigrateFunction" {
            "MigrateSecurityGroup"
        } else {
            "FunctionSecurityGroup"
        };
        assert!(
            matches!(&groups[0], Value::Tagged(t) if t.tag == "!Ref" && t.value == expected),
            "{id}: {groups:?}"
        );
        assert!(
            is_ref(&vpc["SubnetIds"]),
            "{id}: the private subnets parameter"
        );
    }
}

#[test]
fn routes_sit_behind_the_jwt_authorizer() {
    let t = template();
    let api = &resources(&t)["HttpApi"];
    assert_eq!(api["Type"], "AWS::Serverless::HttpApi");
    let auth = &api["Properties"]["Auth"];
    let default = auth["DefaultAuthorizer"].as_str().unwrap();
    let jwt = &auth["Authorizers"][default]["JwtConfiguration"];
    assert!(
        is_ref(&jwt["issuer"]) && is_ref(&jwt["audience"]),
        "issuer/audience are parameters"
    );
    let mut unauthorized = Vec::new();
    for (id, r) in functions(&t) {
        if let Some(events) = r["Properties"]["Events"].as_mapping() {
            for e in events.values().filter(|e| e["Type"] == "HttpApi") {
                let p = &e["Properties"];
                let route = (p["Method"].as_str().unwrap(), p["Path"].as_str().unwrap());
                match p.get("Auth") {
                    None => {}
                    Some(auth) => {
                        assert_eq!(auth["Authorizer"], "NONE", "{id}: {route:?}");
                        assert_eq!(
                            auth.as_mapping().unwrap().len(),
                            1,
                            "{id}: {route:?} only turns the authorizer off"
                        );
                        assert_eq!(id, "BillingFunction");
                        unauthorized.push(route);
                    }
                }
            }
        }
    }
    assert_eq!(
        unauthorized,
        [PAYSTACK_WEBHOOK],
        "only Paystack's webhook is outside the JWT authorizer"
    );
}

/// Billing alone connects as `farmops_billing`, through a role of its own, and reads the
/// Paystack key from Secrets Manager at cold start: never a parameter, never a value in the
/// template or the environment.
#[test]
fn the_paystack_key_lives_in_secrets_manager_and_only_billing_reads_it() {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    assert!(
        !text.contains("FARMOPS_PAYSTACK_SECRET_KEY"),
        "no plain key"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("SecretString:")),
        "no secret value in the template"
    );
    let t = template();
    for (name, p) in t["Parameters"].as_mapping().unwrap() {
        let name = name.as_str().unwrap().to_lowercase();
        assert!(
            !name.contains("paystack") && !name.contains("secret"),
            "parameter {name}: the key is never a parameter"
        );
        assert!(p.get("NoEcho").is_none(), "{name}");
    }
    let res = resources(&t);
    let secret = &res["PaystackSecret"];
    assert_eq!(secret["Type"], "AWS::SecretsManager::Secret");
    assert!(
        secret["Properties"].get("SecretString").is_none(),
        "generated placeholder, the real key put by the operator"
    );
    let fns = functions(&t);
    let billing = &fns["BillingFunction"]["Properties"];
    let vars = &billing["Environment"]["Variables"];
    assert_eq!(
        serde_yaml::to_string(&vars["FARMOPS_PAYSTACK_SECRET_ARN"])
            .unwrap()
            .trim(),
        "!Ref PaystackSecret"
    );
    assert!(
        serde_yaml::to_string(&vars["FARMOPS_BILLING_DATABASE_URL"])
            .unwrap()
            .contains("postgres://farmops_billing@"),
        "billing connects as farmops_billing"
    );
    assert!(vars.get("FARMOPS_DATABASE_URL").is_none());
    assert_eq!(
        serde_yaml::to_string(&billing["Role"]).unwrap().trim(),
        "!GetAtt BillingFunctionRole.Arn"
    );
    for (id, f) in &fns {
        let env = serde_yaml::to_string(&f["Properties"]["Environment"]).unwrap();
        assert_eq!(
            env.contains("PaystackSecret"),
            id == "BillingFunction",
            "{id}"
        );
        assert_eq!(
            env.contains("farmops_billing"),
            id == "BillingFunction",
            "{id}"
        );
    }
    for (id, r) in res {
        if r["Type"] != "AWS::IAM::Role" {
            continue;
        }
        let id = id.as_str().unwrap();
        let policies = serde_yaml::to_string(&r["Properties"]["Policies"]).unwrap();
        assert_eq!(
            policies.contains("PaystackSecret"),
            id == "BillingFunctionRole",
            "{id}: reads the Paystack secret"
        );
        // the proxy connects onward as either user (end-to-end IAM)
        let billing_user = policies.contains("/farmops_billing");
        assert_eq!(
            billing_user,
            id == "BillingFunctionRole" || id == "ProxyRole",
            "{id}: connects as farmops_billing"
        );
        if id == "BillingFunctionRole" {
            assert!(!policies.contains("/farmops_app"), "billing is not the app");
            assert!(!policies.contains("sts:AssumeRole"));
        }
    }
}

#[test]
fn the_jobs_are_scheduled() {
    let t = template();
    let mut scheduled = BTreeSet::new();
    for r in functions(&t).values() {
        let binary = r["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        if let Some(events) = r["Properties"]["Events"].as_mapping() {
            for e in events.values().filter(|e| e["Type"] == "Schedule") {
                let rate = e["Properties"]["Schedule"].as_str().unwrap();
                assert!(
                    rate.starts_with("rate(") || rate.starts_with("cron("),
                    "{rate}"
                );
                scheduled.insert(binary);
            }
        }
    }
    assert_eq!(
        scheduled,
        BTreeSet::from(["distill-memories", "reconcile-credits", "reembed"])
    );
}

#[test]
fn the_deployed_stack_never_enables_the_dev_identity_and_always_uses_iam_and_tls() {
    let text = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    assert!(!text.contains("FARMOPS_DEV_IDENTITY"));
    let t = template();
    for (id, r) in functions(&t) {
        let vars = &r["Properties"]["Environment"]["Variables"];
        if vars.get("FARMOPS_DATABASE_URL").is_some()
            || vars.get("FARMOPS_BILLING_DATABASE_URL").is_some()
        {
            assert_eq!(vars["FARMOPS_DB_IAM_AUTH"], "1", "{id}");
            assert_eq!(vars["FARMOPS_DB_TLS"], "proxy", "{id}");
        } else {
            assert_eq!(id, "MigrateFunction");
            assert_eq!(vars["FARMOPS_DB_TLS"], "cluster");
        }
    }
    let proxy = &resources(&t)["DbProxy"]["Properties"];
    assert_eq!(proxy["RequireTLS"], true);
    assert_eq!(proxy["DefaultAuthScheme"], "IAM_AUTH");
    let cluster = &resources(&t)["DbCluster"]["Properties"];
    assert_eq!(cluster["EnableIAMDatabaseAuthentication"], true);
    assert_eq!(cluster["Engine"], "aurora-postgresql");
}

#[test]
fn only_the_bedrock_role_touches_bedrock_and_it_has_no_database_access() {
    let t = template();
    let text = |v: &Value| serde_yaml::to_string(v).unwrap();
    for (id, r) in resources(&t) {
        if r["Type"] != "AWS::IAM::Role" {
            continue;
        }
        let policies = text(&r["Properties"]["Policies"]);
        let id = id.as_str().unwrap();
        if id == "BedrockRole" {
            assert!(policies.contains("bedrock:InvokeModel"));
            assert!(
                !policies.contains("rds-db"),
                "Bedrock role: nothing on the database"
            );
            assert!(!policies.contains("bedrock:*"));
        } else {
            assert!(!policies.contains("bedrock:"), "{id}: nothing on Bedrock");
        }
        assert!(
            !policies.contains("Action: '*'"),
            "{id}: no wildcard action"
        );
    }
    let trust = text(&resources(&t)["BedrockRole"]["Properties"]["AssumeRolePolicyDocument"]);
    assert!(trust.contains("ModelFunctionRole"), "{trust}");
}

/// docs/openapi.yaml documents exactly the template's HTTP routes (which the test above ties
/// to DESIGN.md), each under its function, and every error code the code can answer.
#[test]
fn the_openapi_document_has_every_route_and_error_code() {
    let routes = routes(&template());
    let doc: Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("docs/openapi.yaml")).unwrap())
            .unwrap();
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    let mut documented = BTreeMap::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (method, op) in item.as_mapping().unwrap() {
            let key = (
                method.as_str().unwrap().to_uppercase(),
                path.as_str().unwrap().to_string(),
            );
            let function = op["x-farmops-function"].as_str().unwrap_or("").to_string();
            assert!(
                !function.is_empty() && root().join("functions").join(&function).exists(),
                "{key:?}: function {function:?} does not exist"
            );
            assert!(
                op.get("x-farmops-status").is_none(),
                "{key:?}: every operation is built and checked; no status marker"
            );
            documented.insert(key, function);
        }
    }
    assert_eq!(documented, routes, "docs/openapi.yaml vs template.yaml");
    let codes: BTreeSet<&str> =
        doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
    let errors = std::fs::read_to_string(root().join("shared/src/error.rs")).unwrap();
    let code_fn = errors
        .split("pub fn code(")
        .nth(1)
        .and_then(|rest| rest.split("\n    }\n").next())
        .unwrap();
    let used: BTreeSet<&str> = code_fn
        .split("=> \"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert!(used.len() >= 11, "read the codes of Error::code: {used:?}");
    assert_eq!(codes, used, "error codes: docs/openapi.yaml vs Error::code");
}

/// The model functions (chat, distill-memories) run on Bedrock in the deployed stack: the
/// provider set, the Bedrock role to assume, the role allowed to assume it, and a model id the
/// code can price (the binaries refuse an unpriced one at cold start).
#[test]
fn the_model_functions_use_bedrock_with_a_priced_model() {
    let t = template();
    let fns = functions(&t);
    for id in ["ChatFunction", "DistillMemoriesFunction"] {
        let p = &fns[id]["Properties"];
        let vars = &p["Environment"]["Variables"];
        assert_eq!(vars["FARMOPS_CHAT_PROVIDER"], "bedrock", "{id}");
        assert!(vars.get("BEDROCK_ROLE_ARN").is_some(), "{id}");
        assert!(is_ref(&vars["FARMOPS_CHAT_MODEL_ID"]), "{id}");
        assert_eq!(
            serde_yaml::to_string(&p["Role"]).unwrap().trim(),
            "!GetAtt ModelFunctionRole.Arn",
            "{id}"
        );
    }
    let model = t["Parameters"]["ChatModelId"]["Default"].as_str().unwrap();
    assert!(
        farmops::credits::price_for(model).is_some(),
        "{model} has no price"
    );
}

/// The clinical guardrail: declared with its denied topics and prohibited words, a published
/// version, passed to both model functions, and applicable by the Bedrock role on that
/// guardrail only.
#[test]
fn the_clinical_guardrail_is_declared_passed_and_applicable_only_by_the_bedrock_role() {
    let t = template();
    let text = |v: &Value| serde_yaml::to_string(v).unwrap();
    let res = resources(&t);
    let g = &res["ClinicalGuardrail"];
    assert_eq!(g["Type"], "AWS::Bedrock::Guardrail");
    let topics: Vec<&str> = g["Properties"]["TopicPolicyConfig"]["TopicsConfig"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["Type"], "DENY");
            t["Name"].as_str().unwrap()
        })
        .collect();
    for topic in [
        "DrugDosingWithoutVet",
        "SellingProductsOfTreatedAnimals",
        "ProhibitedSubstances",
    ] {
        assert!(topics.contains(&topic), "{topic} missing: {topics:?}");
    }
    let words = text(&g["Properties"]["WordPolicyConfig"]);
    // Every substance the rules hold prohibited in every use is a blocked word, except the
    // names a farm conversation uses for other things (a human medicine, a class name):
    // the rules still catch advice to use them; the guardrail would block the whole reply.
    const NOT_BLOCKED: &[&str] = &[
        "nitrofurantoin", // a human medicine for urinary infections
        "chloroform",     // a solvent and a word of chemistry lessons
        "beta-agonist",   // a class name
        "growth hormone", // a class name
        "estradiol",      // human medicines
        "testosterone",
        "methyltestosterone",
        "salbutamol", // asthma inhalers
        "amantadine", // human antivirals
        "oseltamivir",
    ];
    let listed: Vec<String> = g["Properties"]["WordPolicyConfig"]["WordsConfig"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|w| w["Text"].as_str().unwrap().to_lowercase())
        .collect();
    for s in farmops::clinical::vocabulary::SUBSTANCES {
        if matches!(
            s.prohibited,
            farmops::clinical::vocabulary::Prohibited::Always(_)
        ) && !NOT_BLOCKED.contains(&s.name)
        {
            assert!(
                listed.iter().any(|w| w == s.name),
                "{} is prohibited in every use but not a blocked word of the guardrail",
                s.name
            );
        }
    }
    for word in ["chloramphenicol", "clenbuterol", "malachite green"] {
        assert!(words.contains(word), "{word}");
        let row = farmops::clinical::mentions::lookup(word).expect("in the vocabulary");
        assert!(matches!(
            row.prohibited,
            farmops::clinical::vocabulary::Prohibited::Always(_)
        ));
    }
    for m in ["BlockedInputMessaging", "BlockedOutputsMessaging"] {
        let message = g["Properties"][m].as_str().unwrap();
        assert!(
            message.contains("vet"),
            "{m}: plain farm language naming the vet"
        );
    }
    let v = &res["ClinicalGuardrailVersion"];
    assert_eq!(v["Type"], "AWS::Bedrock::GuardrailVersion");
    assert_eq!(
        text(&v["Properties"]["GuardrailIdentifier"]).trim(),
        "!GetAtt ClinicalGuardrail.GuardrailId"
    );
    let fns = functions(&t);
    for (id, f) in &fns {
        let vars = &f["Properties"]["Environment"]["Variables"];
        let model = id == "ChatFunction" || id == "DistillMemoriesFunction";
        assert_eq!(vars.get("FARMOPS_GUARDRAIL_ID").is_some(), model, "{id}");
        assert_eq!(
            vars.get("FARMOPS_GUARDRAIL_VERSION").is_some(),
            model,
            "{id}"
        );
        if model {
            assert_eq!(
                text(&vars["FARMOPS_GUARDRAIL_ID"]).trim(),
                "!GetAtt ClinicalGuardrail.GuardrailId"
            );
            assert_eq!(
                text(&vars["FARMOPS_GUARDRAIL_VERSION"]).trim(),
                "!GetAtt ClinicalGuardrailVersion.Version"
            );
        }
    }
    for (id, r) in res {
        if r["Type"] != "AWS::IAM::Role" {
            continue;
        }
        // (a role with managed policies only, e.g. RDS monitoring, has no inline policies)
        let statements = r["Properties"]["Policies"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|p| {
                p["PolicyDocument"]["Statement"]
                    .as_sequence()
                    .unwrap()
                    .clone()
            })
            .filter(|s| text(&s["Action"]).contains("bedrock:ApplyGuardrail"))
            .collect::<Vec<_>>();
        if id.as_str() == Some("BedrockRole") {
            assert_eq!(statements.len(), 1);
            assert_eq!(
                text(&statements[0]["Resource"]).trim(),
                "!GetAtt ClinicalGuardrail.GuardrailArn"
            );
        } else {
            assert!(statements.is_empty(), "{id:?}");
        }
    }
}

/// The evidence checkpoints (#19): an asymmetric P-256 signing key kept when the stack goes,
/// used by the reconcile function's own role with kms:Sign only (ECDSA_SHA_256) and by no
/// other role, reached through a KMS endpoint, and published as a stack output.
#[test]
fn only_the_reconcile_role_signs_with_the_evidence_key_and_only_signs() {
    let t = template();
    let text = |v: &Value| serde_yaml::to_string(v).unwrap();
    let key = &resources(&t)["EvidenceSigningKey"];
    assert_eq!(key["Type"], "AWS::KMS::Key");
    assert_eq!(key["Properties"]["KeySpec"], "ECC_NIST_P256");
    assert_eq!(key["Properties"]["KeyUsage"], "SIGN_VERIFY");
    assert_eq!(key["DeletionPolicy"], "Retain");
    for (id, r) in resources(&t) {
        if r["Type"] != "AWS::IAM::Role" {
            continue;
        }
        let id = id.as_str().unwrap();
        let policies = text(&r["Properties"]["Policies"]);
        if id == "ReconcileFunctionRole" {
            let kms: Vec<&Value> = r["Properties"]["Policies"]
                .as_sequence()
                .unwrap()
                .iter()
                .flat_map(|p| p["PolicyDocument"]["Statement"].as_sequence().unwrap())
                .filter(|s| text(&s["Action"]).contains("kms:"))
                .collect();
            assert_eq!(kms.len(), 1, "one KMS statement");
            assert_eq!(kms[0]["Action"], "kms:Sign");
            assert!(text(&kms[0]["Resource"]).contains("EvidenceSigningKey.Arn"));
            assert_eq!(
                kms[0]["Condition"]["StringEquals"]["kms:SigningAlgorithm"],
                "ECDSA_SHA_256"
            );
        } else {
            assert!(!policies.contains("kms:Sign"), "{id}: no kms:Sign");
            assert!(!policies.contains("EvidenceSigningKey"), "{id}");
        }
    }
    let reconcile = &functions(&t)["ReconcileCreditsFunction"];
    assert!(text(&reconcile["Properties"]["Role"]).contains("ReconcileFunctionRole"));
    let env = text(&reconcile["Properties"]["Environment"]);
    assert!(
        env.contains("FARMOPS_EVIDENCE_KMS_KEY_ID")
            && env.contains("FARMOPS_EVIDENCE_KEY_FINGERPRINT")
    );
    assert!(text(&resources(&t)["KmsEndpoint"]["Properties"]["ServiceName"]).contains(".kms"));
    assert!(text(&t["Outputs"]["EvidenceSigningKeyArn"]["Value"]).contains("EvidenceSigningKey"));
}
