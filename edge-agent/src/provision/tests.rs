use super::*;

const SECRET: &str = "s3cret-pw";

fn kitchen(extra: &str) -> String {
    format!(
        "kitchen_id = \"bk-01\"\nstore_ids = [\"store-a\", \"store-b\"]\n\
         amqp_url = \"amqps://bk-01:{SECRET}@broker.example.com:5671/%2f\"\n{extra}"
    )
}

/// The image's layout under `root`.
fn provision_in(root: &Path) -> Provision {
    Provision {
        source: root.join("boot/kitchen.toml"),
        config_file: root.join("etc/edge-agent/agent.toml"),
        credstore: CredStore::Plaintext {
            dir: root.join("etc/credstore"),
        },
        etc: root.join("etc"),
        ca_file: root.join("etc/edge-agent/ca.pem"),
        zoneinfo: root.join("zoneinfo"),
    }
}

#[test]
fn a_valid_file_becomes_config_credentials_and_hostname() {
    let current = "listen = \"0.0.0.0:8080\"\ndata_dir = \"/var/lib/edge-agent\"\n\
                   amqp_url = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\n";
    let plan = plan(&kitchen("scanner_retry_ms = 500\n"), Some(current)).expect("valid");
    assert_eq!(plan.kitchen_id, "bk-01");
    assert_eq!(plan.stores, 2);
    assert_eq!(plan.hostname, "kitchen-bk-01");
    assert_eq!(
        plan.credentials,
        [(
            "amqp_url",
            format!("amqps://bk-01:{SECRET}@broker.example.com:5671/%2f")
        )]
    );
    assert!(!plan.config_text.contains(SECRET), "{}", plan.config_text);
    let written: Config = toml::from_str(&plan.config_text).expect("the agent reads it");
    assert_eq!(written.kitchen_id, "bk-01");
    assert_eq!(written.store_ids, ["store-a", "store-b"]);
    assert_eq!(written.scanner_retry_ms, 500);
    assert_eq!(written.listen.port(), 8080, "current keys are kept");
    assert_eq!(written.amqp_url, "amqp://guest:guest@127.0.0.1:5672/%2f");

    let named = plan_ok(&kitchen("hostname = \"fry-box\"\n"));
    assert_eq!(named.hostname, "fry-box");

    // The first manager's pairing code is a secret like the broker's password.
    let paired = plan_ok(&kitchen("pairing_code = \"ROSE-TIGER-4471\"\n"));
    assert_eq!(
        paired.credentials[1],
        ("pairing_code", "ROSE-TIGER-4471".into())
    );
    assert!(
        !paired.config_text.contains("ROSE"),
        "{}",
        paired.config_text
    );
    let short = super::plan(&kitchen("pairing_code = \"1234\"\n"), None).expect_err("short");
    assert_eq!(
        short,
        "invalid config: pairing_code must have at least 8 letters or digits"
    );
}

#[test]
fn the_fleet_channel_keys_are_a_setting_and_a_secret() {
    let plan = plan_ok(&kitchen(
        "mqtt_url = \"mqtts://fleet.example.com:8883\"\nmqtt_password = \"mq-9f8e\"\n",
    ));
    assert_eq!(plan.credentials[1], ("mqtt_password", "mq-9f8e".into()));
    assert!(
        !plan.config_text.contains("mq-9f8e"),
        "{}",
        plan.config_text
    );
    let written: Config = toml::from_str(&plan.config_text).expect("the agent reads it");
    assert_eq!(
        written.mqtt_url.as_deref(),
        Some("mqtts://fleet.example.com:8883")
    );
    let refused = super::plan(&kitchen("mqtt_url = \"mqtt://fleet:1883\"\n"), None)
        .expect_err("plaintext off the box");
    assert!(
        refused.starts_with("mqtt_url: plaintext mqtt:// to fleet is refused"),
        "{refused}"
    );
}

fn plan_ok(text: &str) -> Plan {
    plan(text, None).expect("valid")
}

#[test]
fn refusals_say_why_without_the_secret() {
    let check = |text: String, expected: &str| {
        let reason = plan(&text, None).expect_err(&text);
        assert!(
            reason.contains(expected),
            "{reason:?} should say {expected:?}"
        );
        assert!(!reason.contains(SECRET), "{reason:?} leaks the secret");
    };
    check(
        "store_ids = [\"a\"]".into(),
        "kitchen_id and store_ids must both be set",
    );
    check(kitchen("kitchen = 1\n"), "unknown field `kitchen`");
    check(
        kitchen("hostname = \"Fry Box\"\n"),
        "hostname \"Fry Box\" must be",
    );
    check(kitchen("hostname = 7\n"), "hostname must be a string");
    check(kitchen("prefetch = \"lots\"\n"), "invalid type");
    check(
        kitchen("scanner_retry_ms = 0\n"),
        "scanner_retry_ms must be above 0",
    );
    // A broken line right where the password is: the message names the line, not its text.
    check(
        format!("kitchen_id = \"bk-01\"\namqp_url = \"amqps://u:{SECRET}@h/%2f\nstore_ids = []\n"),
        "kitchen.toml line 2",
    );
    check(
        format!("kitchen_id = \"bk-01\"\nstore_ids = [\"a\"]\namqp_url = \"{SECRET}\"\n"),
        "amqp_url is not an AMQP URL",
    );
    check(
        "kitchen_id = \"bk 01\"\nstore_ids = [\"a\"]\n".into(),
        "kitchen_id \"bk 01\" must be",
    );
}

#[test]
fn links_must_follow_the_tls_rule() {
    let refused = |extra: &str| {
        let text = format!("kitchen_id = \"bk-01\"\nstore_ids = [\"a\"]\n{extra}");
        let reason = plan(&text, None).expect_err(&text);
        assert!(!reason.contains(SECRET), "{reason:?} leaks the secret");
        reason
    };
    assert_eq!(
        refused(&format!(
            "amqp_url = \"amqp://bk:{SECRET}@10.1.2.3:5672/%2f\"\n"
        )),
        "amqp_url: plaintext amqp:// to 10.1.2.3 is refused: a link off the box must use \
         amqps:// (TLS with the broker's certificate verified); amqp:// is allowed to \
         127.0.0.0/8, ::1 or localhost only"
    );
    assert!(
        refused(&format!(
            "amqp_url = \"amqps://bk:pw@broker:5671/%2f\"\n\
             database_url = \"postgres://bk:{SECRET}@10.1.2.3/kitchen?sslmode=require\"\n"
        ))
        .starts_with("database_url: sslmode=require to 10.1.2.3 is refused")
    );
    plan(
        "kitchen_id = \"bk-01\"\nstore_ids = [\"a\"]\n\
         amqp_url = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\n\
         database_url = \"postgres://bk@localhost/kitchen?sslmode=disable\"\n",
        None,
    )
    .expect("plaintext to loopback is allowed");
}

#[test]
fn hostnames_from_kitchen_ids() {
    assert_eq!(hostname_for("BK_01"), "kitchen-bk-01");
    assert_eq!(hostname_for("a.b-"), "kitchen-a-b");
    assert_eq!(hostname_for(&"x".repeat(80)).len(), 63);
    assert_eq!(
        with_host(
            "127.0.0.1\tlocalhost\n127.0.1.1\told\n::1\tlocalhost\n",
            "kitchen-bk-01"
        ),
        "127.0.0.1\tlocalhost\n127.0.1.1\tkitchen-bk-01\n::1\tlocalhost\n"
    );
}

#[test]
fn time_zone_names_are_checked() {
    let london = plan_ok(&kitchen("time_zone = \"Europe/London\"\n"));
    assert_eq!(london.time_zone.as_deref(), Some("Europe/London"));
    assert!(
        !london.config_text.contains("time_zone"),
        "a system setting, not an agent key"
    );
    assert_eq!(plan_ok(&kitchen("")).time_zone, None);
    for (zone, reason) in [
        (
            "\"../../etc/shadow\"",
            "time_zone \"../../etc/shadow\" is not a time zone name",
        ),
        (
            "\"Europe//London\"",
            "time_zone \"Europe//London\" is not a time zone name",
        ),
        ("\"\"", "time_zone \"\" is not a time zone name"),
        ("7", "time_zone must be a string"),
    ] {
        let error = plan(&kitchen(&format!("time_zone = {zone}\n")), None).expect_err(zone);
        assert!(error.starts_with(reason), "{zone}: {error}");
    }
}

/// `time_zone` becomes `/etc/localtime` (a link into the zone database) and
/// `/etc/timezone`; a zone the database lacks refuses the whole file; the applied file's
/// bytes are overwritten on the card before it is unlinked.
#[test]
fn a_time_zone_is_linked_and_the_card_file_scrubbed() {
    let root = std::env::temp_dir().join(format!("agent-provision-tz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let provision = provision_in(&root);
    std::fs::create_dir_all(root.join("boot")).expect("dirs");
    std::fs::create_dir_all(root.join("zoneinfo/Europe")).expect("dirs");
    std::fs::write(
        root.join("zoneinfo/Europe/London"),
        b"TZif2 a compiled zone",
    )
    .expect("zone");
    std::fs::write(root.join("zoneinfo/Europe/Nowhere"), b"not a zone file").expect("junk");

    std::fs::write(
        &provision.source,
        kitchen("time_zone = \"Europe/Nowhere\"\n"),
    )
    .expect("file");
    let error = provision.run().expect_err("refused");
    assert!(
        error.to_string().ends_with(&format!(
            "time_zone \"Europe/Nowhere\" is not in the time zone database ({})",
            root.join("zoneinfo").display()
        )),
        "{error}"
    );
    assert!(!root.join("etc/localtime").exists() && !root.join("etc/hostname").exists());

    let text = kitchen("time_zone = \"Europe/London\"\n");
    std::fs::write(&provision.source, &text).expect("file");
    // A second name for the card file's bytes: what is left of them after the run.
    let witness = root.join("boot/witness");
    std::fs::hard_link(&provision.source, &witness).expect("hard link");
    provision.run().expect("applied");
    assert_eq!(
        std::fs::read_link(root.join("etc/localtime")).expect("a link"),
        root.join("zoneinfo/Europe/London")
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/timezone")).expect("name file"),
        "Europe/London\n"
    );
    assert!(!provision.source.exists());
    assert_eq!(
        std::fs::read(&witness).expect("the bytes"),
        vec![0u8; text.len()],
        "overwritten before the unlink"
    );
    std::fs::remove_dir_all(&root).expect("clean up");
}

#[test]
fn run_applies_a_good_file_and_records_a_bad_one() {
    let root = std::env::temp_dir().join(format!("agent-provision-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let provision = provision_in(&root);
    std::fs::create_dir_all(root.join("boot")).expect("dirs");
    std::fs::create_dir_all(root.join("etc/edge-agent")).expect("dirs");
    let error_file = root.join("etc/edge-agent/provision-error");
    std::fs::write(
        &provision.config_file,
        format!(
            "provision_error_file = {:?}\n",
            error_file.display().to_string()
        ),
    )
    .expect("config");
    assert_eq!(provision.run().expect("no file"), Outcome::NothingToDo);

    std::fs::write(&provision.source, "kitchen_id = \"bk-01\"\n").expect("bad file");
    let error = provision.run().expect_err("refused");
    assert!(error.to_string().contains("store_ids"), "{error}");
    assert_eq!(
        std::fs::read_to_string(&error_file).expect("recorded"),
        "kitchen_id and store_ids must both be set\n"
    );
    assert!(
        !provision.source.exists(),
        "a refused file goes too: it may hold secrets"
    );
    assert!(!root.join("etc/hostname").exists());

    std::fs::write(&provision.source, kitchen("")).expect("good file");
    let outcome = provision.run().expect("applied");
    assert_eq!(
        outcome,
        Outcome::Provisioned {
            kitchen_id: "bk-01".into(),
            stores: 2,
            hostname: "kitchen-bk-01".into()
        }
    );
    assert!(!provision.source.exists(), "the secrets leave the card");
    assert!(!error_file.exists(), "the error is cleared");
    let credential = root.join("etc/credstore/edge-agent.amqp_url");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&credential)
        .expect("written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(&credential)
            .expect("read")
            .contains(SECRET)
    );
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hostname")).expect("hostname"),
        "kitchen-bk-01\n"
    );
    assert!(!provision.ca_file.exists(), "no ca_pem, no CA file");
    let config = Config::load(Some(&provision.config_file)).expect("the agent loads it");
    assert!(config.provisioned());
    assert_eq!(
        config.provision_error_file.as_deref(),
        Some(error_file.as_path())
    );
    std::fs::remove_dir_all(&root).expect("clean up");
}

#[test]
fn the_ca_bundle_is_checked_and_written_to_the_ca_file() {
    let root = kitchen_testkit::dir::TempDir::new("agent-provision-ca");
    let root = root.path();
    let provision = provision_in(root);
    std::fs::create_dir_all(root.join("boot")).expect("dirs");
    let error_file = root.join("etc/edge-agent/provision-error");
    let ca = kitchen_testkit::tls::TestCa::new("kitchen test ca");
    let second = kitchen_testkit::tls::TestCa::new("second ca");
    let bundle = format!("{}{}", ca.cert_pem(), second.cert_pem());

    // Garbage between the PEM markers: the whole file is refused, nothing written.
    let garbage = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    std::fs::write(
        &provision.source,
        kitchen(&format!("ca_pem = '''\n{garbage}'''\n")),
    )
    .expect("bad file");
    let error = provision.run().expect_err("refused").to_string();
    assert!(
        error.starts_with("kitchen.toml refused: ca_pem: certificate 1: "),
        "{error}"
    );
    assert!(!provision.ca_file.exists());
    assert!(!provision.config_file.exists());
    assert!(
        std::fs::read_to_string(&error_file)
            .expect("recorded")
            .starts_with("ca_pem: certificate 1: ")
    );
    std::fs::write(
        &provision.source,
        kitchen("ca_pem = \"not a certificate\"\n"),
    )
    .expect("bad file");
    assert_eq!(
        provision.run().expect_err("refused").to_string(),
        "kitchen.toml refused: ca_pem: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"
    );

    std::fs::write(
        &provision.source,
        kitchen(&format!("ca_pem = '''\n{bundle}'''\n")),
    )
    .expect("good file");
    provision.run().expect("applied");
    assert_eq!(
        std::fs::read_to_string(&provision.ca_file).expect("written"),
        bundle
    );
    let text = std::fs::read_to_string(&provision.config_file).expect("config");
    assert!(!text.contains("ca_pem"), "{text}");
    // The agent reads it as its CA bundle.
    let config = Config {
        ca_file: Some(provision.ca_file.clone()),
        ..Config::default()
    };
    let ca_bundle = config.ca_bundle().expect("parses").expect("there");
    assert_eq!(ca_bundle.certificates, 2);
    assert_eq!(ca_bundle.pem, bundle);
}

#[test]
fn an_enrolment_card_holds_the_token_and_the_relay_url_only() {
    let card = |extra: &str| {
        format!("kitchen_id = \"bk-01\"\nstore_ids = [\"a\"]\nenrol_token = \"{SECRET}\"\n{extra}")
    };
    let plan = plan(
        &card("enrol_url = \"https://relay.example.com/enrol\"\n"),
        None,
    )
    .expect("valid");
    assert_eq!(plan.credentials, [("enrol_token", SECRET.to_owned())]);
    assert!(!plan.config_text.contains(SECRET), "{}", plan.config_text);
    let written: Config = toml::from_str(&plan.config_text).expect("the agent reads it");
    assert_eq!(
        written.enrol_url.as_deref(),
        Some("https://relay.example.com/enrol")
    );
    assert_eq!(
        super::plan(&card(""), None).expect_err("no url"),
        "enrol_token needs enrol_url (the relay's https://…/enrol)"
    );
    assert!(
        super::plan(
            &card("enrol_url = \"http://relay.example.com/enrol\"\n"),
            None
        )
        .expect_err("plaintext")
        .starts_with("enrol_url: plaintext http:// to relay.example.com is refused")
    );
}

/// `systemd-creds` with a host key of the test's own (`SYSTEMD_CREDENTIAL_SECRET`), not the
/// machine's `/var/lib/systemd/credential.secret`.
fn systemd_creds_in(root: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let wrapper = root.join("systemd-creds");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nSYSTEMD_CREDENTIAL_SECRET={} exec systemd-creds --with-key=host \"$@\"\n",
            root.join("credential.secret").display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    wrapper
}

#[test]
fn secrets_are_sealed_with_systemd_creds_and_the_plaintext_ones_removed() {
    let root = std::env::temp_dir().join(format!("agent-provision-sealed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("boot")).expect("dirs");
    let mut provision = provision_in(&root);
    provision.credstore = CredStore::Encrypted {
        dir: root.join("etc/credstore.encrypted"),
        program: systemd_creds_in(&root),
    };
    // What an earlier version left in plaintext.
    std::fs::create_dir_all(root.join("etc/credstore")).expect("dirs");
    let legacy = root.join("etc/credstore/edge-agent.amqp_url");
    std::fs::write(&legacy, "amqps://old:old-secret@broker/%2f\n").expect("legacy");

    std::fs::write(&provision.source, kitchen("")).expect("card");
    provision.run().expect("applied");
    let sealed = std::fs::read(root.join("etc/credstore.encrypted/edge-agent.amqp_url"))
        .expect("sealed credential");
    let text = String::from_utf8_lossy(&sealed);
    assert!(!text.contains(SECRET), "the secret is encrypted: {text}");
    assert_eq!(
        provision.credstore.read("amqp_url").expect("decrypts"),
        Some(format!(
            "amqps://bk-01:{SECRET}@broker.example.com:5671/%2f"
        ))
    );
    assert!(!legacy.exists(), "the plaintext copy is gone");
    // The name is sealed in: the bytes under another credential's name do not decrypt.
    std::fs::write(
        root.join("etc/credstore.encrypted/edge-agent.database_url"),
        &sealed,
    )
    .expect("copy");
    let error = provision
        .credstore
        .read("database_url")
        .expect_err("wrong name");
    assert!(error.to_string().contains("decrypt"), "{error}");
    provision.credstore.remove("amqp_url").expect("removed");
    assert_eq!(provision.credstore.read("amqp_url").expect("read"), None);
    std::fs::remove_dir_all(&root).expect("clean up");
}
