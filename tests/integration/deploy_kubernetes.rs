//! `deploy/kubernetes.yml`: a worker Deployment whose probes reach the health endpoint its own
//! flags serve, with a grace period longer than its shutdown.

use yaml_rust2::{Yaml, YamlLoader};

const MANIFEST: &str = include_str!("../../deploy/kubernetes.yml");

fn container() -> Yaml {
    let manifest = YamlLoader::load_from_str(MANIFEST)
        .expect("kubernetes.yml is YAML")
        .into_iter()
        .next()
        .expect("one document");
    assert_eq!(manifest["kind"].as_str(), Some("Deployment"));
    assert_eq!(manifest["apiVersion"].as_str(), Some("apps/v1"));
    let spec = &manifest["spec"]["template"]["spec"];
    let grace = spec["terminationGracePeriodSeconds"]
        .as_i64()
        .expect("terminationGracePeriodSeconds");
    assert!(
        grace >= 25 + 20,
        "the grace period {grace} s must exceed -t 25 by 20 s"
    );
    let containers = spec["containers"].as_vec().expect("containers");
    assert_eq!(containers.len(), 1);
    containers[0].clone()
}

fn strings(yaml: &Yaml) -> Vec<String> {
    yaml.as_vec()
        .expect("a list")
        .iter()
        .map(|item| item.as_str().expect("a string").to_owned())
        .collect()
}

#[test]
fn the_probes_reach_the_health_endpoint_the_flags_serve() {
    let container = container();
    let command = [strings(&container["command"]), strings(&container["args"])].concat();
    assert_eq!(command[0], "worker");
    let flags = jobs::Worker::from_args(&command).expect("the worker accepts its args");
    let address = flags.config().health.expect("--health");
    assert!(
        address.ip().is_unspecified(),
        "the kubelet probes the pod's address, so --health listens on every interface"
    );
    assert_eq!(flags.config().timeout.as_secs(), 25);
    let ports = container["ports"].as_vec().expect("ports");
    let health = ports
        .iter()
        .find(|port| port["name"].as_str() == Some("health"))
        .expect("a port named health");
    assert_eq!(
        health["containerPort"].as_i64(),
        Some(i64::from(address.port()))
    );
    for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some("health"), "{probe}");
        let timeout = container[probe]["timeoutSeconds"].as_i64().unwrap_or(1);
        assert!(timeout >= 1, "{probe}");
    }
    let env = container["env"].as_vec().expect("env");
    assert!(
        env.iter()
            .any(|var| var["name"].as_str() == Some("REDIS_URL")
                && var["valueFrom"]["secretKeyRef"]["key"].as_str() == Some("url")),
        "REDIS_URL comes from a Secret"
    );
}
