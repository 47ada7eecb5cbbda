//! `deploy/docker-compose.yml` and `deploy/Dockerfile`: parsed and checked (and given to
//! `docker compose config` where Docker Compose is installed).

use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

const COMPOSE: &str = include_str!("../../deploy/docker-compose.yml");
const DOCKERFILE: &str = include_str!("../../deploy/Dockerfile");

fn compose() -> Yaml {
    YamlLoader::load_from_str(COMPOSE)
        .expect("docker-compose.yml is YAML")
        .into_iter()
        .next()
        .expect("one document")
}

/// A service, with `<<: *anchor` merged in as Compose does.
fn service(name: &str) -> yaml_rust2::yaml::Hash {
    let document = compose();
    let service = document["services"][name]
        .as_hash()
        .unwrap_or_else(|| panic!("no service `{name}`"))
        .clone();
    let mut merged = match service.get(&Yaml::String("<<".to_owned())) {
        Some(Yaml::Hash(base)) => base.clone(),
        _ => yaml_rust2::yaml::Hash::new(),
    };
    for (key, value) in service {
        merged.insert(key, value);
    }
    merged
}

fn get<'a>(service: &'a yaml_rust2::yaml::Hash, key: &str) -> &'a Yaml {
    service
        .get(&Yaml::String(key.to_owned()))
        .unwrap_or(&Yaml::BadValue)
}

fn strings(yaml: &Yaml) -> Vec<String> {
    yaml.as_vec()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn redis_keeps_its_data_and_never_evicts() {
    let redis = service("redis");
    let command = strings(get(&redis, "command")).join(" ");
    assert!(command.contains("--appendonly yes"), "{command}");
    assert!(
        command.contains("--maxmemory-policy noeviction"),
        "{command}"
    );
    assert_eq!(strings(get(&redis, "volumes")), ["redis-data:/data"]);
    assert!(
        compose()["volumes"]
            .as_hash()
            .expect("top-level volumes")
            .contains_key(&Yaml::String("redis-data".to_owned()))
    );
}

#[test]
fn the_app_and_the_worker_take_redis_url_from_the_environment() {
    for (name, program) in [("app", "todos"), ("worker", "worker")] {
        let service = service(name);
        assert_eq!(strings(get(&service, "command"))[0], program, "{name}");
        let environment = get(&service, "environment");
        assert_eq!(
            environment["REDIS_URL"].as_str(),
            Some("${REDIS_URL:-redis://redis:6379/0}"),
            "{name}"
        );
        assert_eq!(
            get(&service, "build")["dockerfile"].as_str(),
            Some("deploy/Dockerfile"),
            "{name}"
        );
        assert!(
            get(&service, "depends_on")["redis"].as_hash().is_some(),
            "{name} starts after redis"
        );
    }
    let worker = service("worker");
    assert_eq!(
        get(&worker, "environment")["JOBS_LOG_FORMAT"].as_str(),
        Some("${JOBS_LOG_FORMAT:-json}")
    );
    let grace = get(&worker, "stop_grace_period")
        .as_str()
        .expect("stop_grace_period");
    let seconds: u64 = grace.trim_end_matches('s').parse().expect("seconds");
    assert!(
        seconds >= 25 + 20,
        "stop_grace_period {grace} must exceed the worker's 25 s timeout by the hand-back's 20 s"
    );
}

#[test]
fn the_app_and_its_dashboard_are_published_on_loopback_only() {
    let app = service("app");
    assert_eq!(strings(get(&app, "ports")), ["127.0.0.1:3000:3000"]);
    assert_eq!(
        get(&app, "environment")["JOBS_WEB_PASSWORD"].as_str(),
        Some("${JOBS_WEB_PASSWORD:-}"),
        "the dashboard's password passes through"
    );
}

#[test]
fn the_dockerfile_builds_both_examples_in_a_separate_stage() {
    let stages: Vec<&str> = DOCKERFILE
        .lines()
        .filter(|line| line.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[0].ends_with(" AS build"), "{stages:?}");
    assert!(DOCKERFILE.contains("--example todos --example worker"));
    assert!(DOCKERFILE.contains("COPY --from=build /out/ /usr/local/bin/"));
}

/// Compose itself resolves and validates the file, without an engine: `docker compose config`
/// where the Compose plugin is installed, else Debian's `docker-compose` (1.29), which
/// `scripts/setup` installs.
#[test]
fn docker_compose_accepts_the_file() {
    let plugin = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|output| output.status.success());
    let mut command = if plugin {
        let mut command = Command::new("docker");
        command.arg("compose");
        command
    } else {
        Command::new("docker-compose")
    };
    let output = command
        .args(["-f", "deploy/docker-compose.yml", "config", "--quiet"])
        .env_remove("REDIS_URL")
        .output()
        .expect("Docker Compose (docker-compose on Debian; scripts/setup installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The worker's healthcheck probes the `--health` address its own flags give.
#[test]
fn the_worker_is_healthchecked_on_its_health_address() {
    let worker = service("worker");
    let flags = jobs::Worker::from_args(strings(get(&worker, "command"))).expect("the flags");
    let address = flags.config().health.expect("--health");
    assert!(
        address.ip().is_loopback(),
        "the probe runs inside the container"
    );
    let test = strings(&get(&worker, "healthcheck")["test"]);
    assert_eq!(test[..3], ["CMD", "bash", "-c"]);
    let script = &test[3];
    assert!(
        script.contains(&format!("/dev/tcp/127.0.0.1/{}", address.port())),
        "{script}"
    );
    assert!(script.contains("GET /livez "), "{script}");
    // health.rs runs this script against a real worker.
}
