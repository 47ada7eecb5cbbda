//! The steps of a workflow as a graph: checked once, at push, for what a user can get wrong (a
//! name used twice, a dependency on no step, a cycle), and asked which steps a success makes
//! ready.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// One step as stored in `workflow:<wid>`'s `steps` field: its name, the steps it waits for, and
/// its job's JSON (Sidekiq's format, jid included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StepDef {
    /// The step's name, unique in its workflow.
    pub(crate) name: String,
    /// The names of the steps it runs after.
    pub(crate) deps: Vec<String>,
    /// The job it runs, as a JSON object.
    pub(crate) job: serde_json::Value,
}

/// Checks `steps` (in the order they were added): at least one step, each name once, each
/// dependency a step of the workflow (and not the step itself), no cycle. The error says which
/// step and what to change.
pub(crate) fn validate(steps: &[StepDef]) -> Result<(), String> {
    if steps.is_empty() {
        return Err("it has no step; add one with `.step(name, job)`".to_owned());
    }
    let mut names = HashSet::new();
    for step in steps {
        if step.name.is_empty() {
            return Err("a step has an empty name; give every step a name".to_owned());
        }
        if !names.insert(step.name.as_str()) {
            return Err(format!(
                "the step `{}` is added twice; give each step its own name",
                step.name
            ));
        }
    }
    for step in steps {
        for dep in &step.deps {
            if *dep == step.name {
                return Err(format!("the step `{}` depends on itself", step.name));
            }
            if !names.contains(dep.as_str()) {
                return Err(format!(
                    "the step `{}` depends on `{dep}`, which is no step of this workflow; add \
                     the step `{dep}`, or fix the name",
                    step.name
                ));
            }
        }
    }
    if let Some(cycle) = find_cycle(steps) {
        return Err(format!(
            "its steps depend on each other in a cycle ({}), so none of them could ever run; \
             remove one of these dependencies",
            cycle.join(" -> ")
        ));
    }
    Ok(())
}

/// A cycle of dependencies, as the names along it (the first repeated at the end), if any.
fn find_cycle(steps: &[StepDef]) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unvisited,
        OnPath,
        Done,
    }
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(position, step)| (step.name.as_str(), position))
        .collect();
    let mut marks = vec![Mark::Unvisited; steps.len()];
    for start in 0..steps.len() {
        if marks[start] != Mark::Unvisited {
            continue;
        }
        // Depth first, without recursion: (step, how many of its deps are explored).
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::OnPath;
        while let Some(&mut (step, ref mut next)) = path.last_mut() {
            let Some(dep) = steps[step].deps.get(*next) else {
                marks[step] = Mark::Done;
                path.pop();
                continue;
            };
            *next += 1;
            let dep = index[dep.as_str()];
            match marks[dep] {
                Mark::Done => {}
                Mark::Unvisited => {
                    marks[dep] = Mark::OnPath;
                    path.push((dep, 0));
                }
                Mark::OnPath => {
                    // The path from `dep` to `step`, then back to `dep`; a step runs after its
                    // dependencies, so the cycle reads best from a dependency to its dependent.
                    let from = path.iter().position(|(on, _)| *on == dep).unwrap_or(0);
                    let mut cycle: Vec<String> = path[from..]
                        .iter()
                        .rev()
                        .map(|(on, _)| steps[*on].name.clone())
                        .collect();
                    cycle.push(steps[step].name.clone());
                    return Some(cycle);
                }
            }
        }
    }
    None
}

/// The steps of a valid graph in an order where each comes after its dependencies, otherwise
/// in the order they were added.
pub(crate) fn in_order(steps: &[StepDef]) -> Vec<&StepDef> {
    let mut placed: HashSet<&str> = HashSet::new();
    let mut ordered = Vec::with_capacity(steps.len());
    while ordered.len() < steps.len() {
        let before = ordered.len();
        for step in steps {
            if !placed.contains(step.name.as_str())
                && step.deps.iter().all(|dep| placed.contains(dep.as_str()))
            {
                placed.insert(&step.name);
                ordered.push(step);
            }
        }
        if ordered.len() == before {
            // A cycle, which `validate` refuses first: leave the rest out.
            break;
        }
    }
    ordered
}

/// The steps that depend on `finished` and whose dependencies have all succeeded (`done`),
/// and that have not succeeded themselves, in the order they were added.
pub(crate) fn ready_after<'a>(
    steps: &'a [StepDef],
    finished: &str,
    done: &HashSet<String>,
) -> Vec<&'a StepDef> {
    steps
        .iter()
        .filter(|step| step.deps.iter().any(|dep| dep == finished))
        .filter(|step| !done.contains(&step.name))
        .filter(|step| step.deps.iter().all(|dep| done.contains(dep)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::{StepDef, in_order, ready_after, validate};

    fn step(name: &str, deps: &[&str]) -> StepDef {
        StepDef {
            name: name.to_owned(),
            deps: deps.iter().map(|dep| (*dep).to_owned()).collect(),
            job: serde_json::json!({"class": "Noop", "args": []}),
        }
    }

    fn diamond() -> Vec<StepDef> {
        vec![
            step("a", &[]),
            step("b", &["a"]),
            step("c", &["a"]),
            step("d", &["b", "c"]),
        ]
    }

    #[test]
    fn a_diamond_is_valid() {
        assert_eq!(validate(&diamond()), Ok(()));
    }

    #[test]
    fn a_cycle_is_refused_naming_its_steps() {
        let steps = vec![
            step("a", &[]),
            step("b", &["a", "d"]),
            step("c", &["b"]),
            step("d", &["c"]),
        ];
        let error = validate(&steps).unwrap_err();
        assert!(
            error.contains("cycle (b -> c -> d -> b)")
                || error.contains("cycle (c -> d -> b -> c)")
                || error.contains("cycle (d -> b -> c -> d)"),
            "{error}"
        );
    }

    #[test]
    fn an_unknown_dependency_is_refused_naming_the_step() {
        let steps = vec![step("a", &[]), step("b", &["z"])];
        assert_eq!(
            validate(&steps).unwrap_err(),
            "the step `b` depends on `z`, which is no step of this workflow; add the step `z`, \
             or fix the name"
        );
    }

    #[test]
    fn a_name_used_twice_is_refused() {
        let steps = vec![step("a", &[]), step("a", &[])];
        assert_eq!(
            validate(&steps).unwrap_err(),
            "the step `a` is added twice; give each step its own name"
        );
    }

    #[test]
    fn a_step_depending_on_itself_is_refused() {
        let error = validate(&[step("a", &["a"])]).unwrap_err();
        assert_eq!(error, "the step `a` depends on itself");
    }

    #[test]
    fn an_empty_workflow_is_refused() {
        assert!(validate(&[]).unwrap_err().starts_with("it has no step"));
    }

    #[test]
    fn in_order_puts_each_step_after_its_dependencies() {
        let steps = vec![
            step("d", &["b", "c"]),
            step("c", &["a"]),
            step("a", &[]),
            step("b", &["a"]),
        ];
        let names: Vec<&str> = in_order(&steps)
            .into_iter()
            .map(|step| step.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
    }

    #[test]
    fn a_step_is_ready_once_all_its_dependencies_succeeded() {
        let steps = diamond();
        let done = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect();
        let names = |ready: Vec<&StepDef>| {
            ready
                .into_iter()
                .map(|step| step.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(ready_after(&steps, "a", &done(&["a"]))), ["b", "c"]);
        assert!(ready_after(&steps, "b", &done(&["a", "b"])).is_empty());
        assert_eq!(
            names(ready_after(&steps, "c", &done(&["a", "b", "c"]))),
            ["d"]
        );
        let all: HashSet<String> = done(&["a", "b", "c", "d"]);
        assert!(ready_after(&steps, "c", &all).is_empty());
    }
}
