//! The batches' admin API and dashboard pages, over a real Redis: the list, a batch's page,
//! its failed jobs linked to their retry and dead entries, escaping, expired and deleted
//! batches. The batch keys are written as `docs/batches.md` lays them out; `batches_browser`
//! pushes a real batch and runs it with a real worker.

use jobs::Bid;
use jobs::api::{Batches, Page, SetKind};
use redis::AsyncCommands;
use serde_json::json;

use crate::support::{TestRedis, now};
use crate::web_http::{app, get, post};

/// A batch to write as the batch scripts store it.
struct Seed<'a> {
    bid: &'a str,
    description: &'a str,
    /// Created this many seconds ago.
    age: f64,
    /// Members ever registered.
    total: u64,
    /// The pending members.
    pending: &'a [&'a str],
    /// The failed members, each with whether it died.
    failed: &'a [(&'a str, bool)],
    /// More fields of its hash.
    extra: &'a [(&'a str, String)],
}

/// Writes `seed`'s keys.
async fn write_batch(redis: &TestRedis, seed: Seed<'_>) {
    let Seed {
        bid,
        description,
        age,
        total,
        pending,
        failed,
        extra,
    } = seed;
    let mut raw = redis.raw().await;
    let created = now() - age;
    let mut fields: Vec<(String, String)> = vec![
        ("description".into(), description.into()),
        ("created_at".into(), ((created * 1000.0) as u64).to_string()),
        ("total".into(), total.to_string()),
        ("sealed".into(), "1".into()),
        // An ActiveJob callback (shown as the class it wraps) and a plain one.
        (
            "cb:success".into(),
            json!({"class": "Sidekiq::ActiveJob::Wrapper", "wrapped": "ScoresPublished",
                   "args": [{"job_class": "ScoresPublished", "arguments": []}], "queue": "default"})
            .to_string(),
        ),
        (
            "cb:death".into(),
            json!({"class": "AlertOps", "args": [], "queue": "default"}).to_string(),
        ),
    ];
    fields.extend(
        extra
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone())),
    );
    let _: () = raw
        .hset_multiple(format!("batch:{bid}"), &fields)
        .await
        .unwrap();
    for member in pending {
        let _: () = raw
            .sadd(format!("batch:{bid}:pending"), *member)
            .await
            .unwrap();
    }
    for (member, dead) in failed {
        let info = json!({
            "class": "ScoreUser", "error_class": "RuntimeError",
            "error_message": format!("no score for {member}"),
            "failed_at": now() - 5.0, "dead": dead,
        });
        let _: () = raw
            .hset(format!("batch:{bid}:failed"), *member, info.to_string())
            .await
            .unwrap();
        if *dead {
            let _: () = raw
                .sadd(format!("batch:{bid}:dead"), *member)
                .await
                .unwrap();
        }
    }
    let _: () = raw.zadd("batches", bid, created).await.unwrap();
}

/// `text` as a bid.
fn bid(text: &str) -> Bid {
    text.parse().unwrap()
}

/// A job of batch `bid` as the worker stores it in a sorted set after a failure.
fn failed_job(jid: &str, bid: &str) -> String {
    json!({
        "class": "ScoreUser", "args": [jid], "jid": jid, "queue": "default", "retry": true,
        "bid": bid, "created_at": now() - 60.0, "enqueued_at": now() - 30.0,
        "failed_at": now() - 5.0, "retry_count": 0, "error_class": "RuntimeError",
        "error_message": "boom",
    })
    .to_string()
}

#[tokio::test]
async fn batches_web_api_lists_newest_first_and_reads_failures() {
    let redis = TestRedis::start();
    let client = redis.client();
    let older = Seed {
        bid: "olderBatch0001",
        description: "first",
        age: 60.0,
        total: 2,
        pending: &[],
        failed: &[],
        extra: &[],
    };
    write_batch(&redis, older).await;
    let newer = Seed {
        bid: "newerBatch0001",
        description: "second",
        age: 10.0,
        total: 4,
        pending: &["j1", "j2", "batch:childBatch0001"],
        failed: &[("j1", false), ("j2", true)],
        extra: &[("complete_at", ((now() * 1000.0) as u64).to_string())],
    };
    write_batch(&redis, newer).await;
    // Listed, but its data expired.
    let mut raw = redis.raw().await;
    let _: () = raw
        .zadd("batches", "goneBatch00001", now() - 120.0)
        .await
        .unwrap();
    redis
        .zadd("retry", now() + 60.0, &failed_job("j1", "newerBatch0001"))
        .await;
    redis
        .zadd("dead", now() - 1.0, &failed_job("j2", "newerBatch0001"))
        .await;

    let batches = Batches::new(&client);
    assert_eq!(batches.size().await.unwrap(), 3);
    let listed = batches.page(Page::first(10)).await.unwrap();
    let bids: Vec<&str> = listed.iter().map(|batch| batch.bid.as_str()).collect();
    assert_eq!(bids, ["newerBatch0001", "olderBatch0001", "goneBatch00001"]);
    let newer = &listed[0];
    assert_eq!((newer.total, newer.pending, newer.done()), (4, 3, 1));
    assert_eq!((newer.failed, newer.dead), (2, 1));
    assert!(newer.complete_at.is_some() && newer.success_at.is_none());
    assert!(newer.has_callback("success") && newer.has_callback("death"));
    assert!(!newer.has_callback("complete"));
    assert!(listed[2].expired && !listed[1].expired);
    let gone = batches.get(&bid("goneBatch00001")).await.unwrap().unwrap();
    assert!(gone.expired);
    let newer_read = batches.get(&bid("newerBatch0001")).await.unwrap().unwrap();
    let classes: Vec<(&str, &str)> = newer
        .callbacks
        .iter()
        .map(|callback| (callback.event.as_str(), callback.class.as_str()))
        .collect();
    assert_eq!(
        classes,
        [("success", "ScoresPublished"), ("death", "AlertOps")],
        "ActiveJob unwrapped"
    );
    assert_eq!(&newer_read, newer, "one batch reads as the list reads it");

    let failed = batches.failed(&bid("newerBatch0001")).await.unwrap();
    let by_member = |member: &str| failed.iter().find(|f| f.member == member).unwrap();
    let (kind, entry) = by_member("j1").entry.clone().unwrap();
    assert_eq!((kind, entry.record.jid()), (SetKind::Retry, "j1"));
    let (kind, _) = by_member("j2").entry.clone().unwrap();
    assert_eq!(kind, SetKind::Dead);
    assert!(by_member("j2").dead);
    assert_eq!(
        batches
            .pending_children(&bid("newerBatch0001"))
            .await
            .unwrap(),
        ["childBatch0001"]
    );

    assert!(batches.get(&bid("missingBatch01")).await.unwrap().is_none());
    assert!(batches.delete(&bid("newerBatch0001")).await.unwrap());
    assert!(batches.get(&bid("newerBatch0001")).await.unwrap().is_none());
    assert!(!batches.delete(&bid("newerBatch0001")).await.unwrap());
    let keys = redis.keys().await;
    assert!(
        !keys.iter().any(|key| key.starts_with("batch:newer")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn batches_web_pages_show_progress_failures_and_escape_descriptions() {
    let redis = TestRedis::start();
    let client = redis.client();
    let hostile = "<script>alert('x')</script>";
    let seed = Seed {
        bid: "hostileBatch01",
        description: hostile,
        age: 10.0,
        total: 4,
        pending: &["j1", "j2"],
        failed: &[("j1", false)],
        extra: &[
            ("parent", "parentBatch001".to_owned()),
            ("workflow", "w1".to_owned()),
            ("step", "tally".to_owned()),
        ],
    };
    write_batch(&redis, seed).await;
    redis
        .zadd("retry", now() + 60.0, &failed_job("j1", "hostileBatch01"))
        .await;
    let app = app(&client);

    let list = get(&app, "/jobs/batches").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("2 of 4 done"), "{}", list.body);
    assert!(!list.body.contains(hostile));
    assert!(
        list.body
            .contains("&lt;script&gt;alert('x')&lt;/script&gt;")
    );
    assert!(list.body.contains(r#"href="/jobs/batches/hostileBatch01""#));

    let page = get(&app, "/jobs/batches/hostileBatch01").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(hostile));
    assert!(page.body.contains("2 of 4 done"));
    assert!(
        page.body.contains("<code>ScoresPublished</code>") && !page.body.contains("Wrapper"),
        "the callback's class as the list reads it, ActiveJob unwrapped"
    );
    assert!(
        page.body.contains(r#"href="/jobs/batches/parentBatch001""#),
        "parent link"
    );
    assert!(
        page.body.contains(r#"href="/jobs/workflows/w1""#),
        "workflow link"
    );
    let entry = crate::support::first_entry(&client, SetKind::Retry).await;
    let retry_link = format!(
        r#"href="/jobs/retries/{}""#,
        entry.key().replace('.', "%2E").replace('-', "%2D")
    );
    assert!(
        page.body.contains(&retry_link),
        "{}\n{retry_link}",
        page.body
    );
    assert!(page.body.contains("no score for j1"));

    // The retry entry's page links back to the batch.
    let entry_page = get(&app, &format!("/jobs/retries/{}", entry.key())).await;
    assert!(
        entry_page
            .body
            .contains(r#"href="/jobs/batches/hostileBatch01""#)
    );

    assert_eq!(get(&app, "/jobs/batches/nope").await.status, 404);
    // A workflow step's (and nested) batch is not deleted; once it is neither, it is.
    let refused = post(
        &app,
        "/jobs/batches/hostileBatch01",
        &[("action", "delete")],
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    let mut raw = redis.raw().await;
    let _: () = raw
        .hdel("batch:hostileBatch01", &["parent", "workflow", "step"])
        .await
        .unwrap();
    let deleted = post(
        &app,
        "/jobs/batches/hostileBatch01",
        &[("action", "delete")],
    )
    .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert_eq!(get(&app, "/jobs/batches/hostileBatch01").await.status, 404);
    assert!(
        get(&app, "/jobs/batches")
            .await
            .body
            .contains("No batch yet")
    );
}

#[tokio::test]
async fn batches_web_workflow_pages_list_steps_and_escape() {
    let redis = TestRedis::start();
    let client = redis.client();
    let hostile = "<img src=x onerror=alert(1)>";
    let wid = jobs::Workflow::new(hostile)
        .client(&client)
        .step_payload("fetch", &[], jobs::Payload::new("Fetch", vec![]))
        .step_payload(
            "<b>render</b>",
            &["fetch"],
            jobs::Payload::new("Render", vec![]),
        )
        .push()
        .await
        .unwrap();
    let app = app(&client);

    let list = get(&app, "/jobs/workflows").await;
    assert_eq!(list.status, 200);
    assert!(!list.body.contains(hostile));
    assert!(list.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(list.body.contains("0 of 2 steps done"), "{}", list.body);

    let page = get(&app, &format!("/jobs/workflows/{wid}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(hostile) && !page.body.contains("<b>render</b>"));
    assert!(page.body.contains("&lt;b&gt;render&lt;/b&gt;"));
    assert!(page.body.contains(r#"<tr data-step="fetch">"#));
    assert!(
        page.body.contains("waiting"),
        "the second step waits for the first"
    );
    assert_eq!(get(&app, "/jobs/workflows/nope").await.status, 404);
}

/// A workflow id that is not one (14 URL-safe base64 characters) is a 404, never a read of
/// another key: `workflow:abc:done` is a set, which the page must not read as a workflow.
#[tokio::test]
async fn batches_web_an_invalid_workflow_id_is_a_404_not_a_read_of_another_key() {
    let redis = TestRedis::start();
    let client = redis.client();
    let mut raw = redis.raw().await;
    let _: () = raw.sadd("workflow:abc:done", "fetch").await.unwrap();
    let _: () = raw.sadd("workflow:abcdefghi:done", "fetch").await.unwrap();
    let app = app(&client);
    for probe in ["abc:done", "abcdefghi:done"] {
        let page = get(&app, &format!("/jobs/workflows/{probe}")).await;
        assert_eq!(page.status, 404, "{probe}: {}", page.body);
    }
}

/// Deleting a workflow step's batch would strand its workflow (its dependents never run), a
/// nested batch's its parent (the child stays pending there), a parent's its pending children:
/// the page refuses with 409, saying why, and the data stays.
#[tokio::test]
async fn batches_web_deleting_a_workflow_step_or_nested_batch_is_refused() {
    let redis = TestRedis::start();
    let client = redis.client();
    let step = Seed {
        bid: "stepBatch00001",
        description: "a step",
        age: 10.0,
        total: 1,
        pending: &["j1"],
        failed: &[],
        extra: &[
            ("workflow", "wflowAbcdefgh1".to_owned()),
            ("step", "tally".to_owned()),
        ],
    };
    write_batch(&redis, step).await;
    let child = Seed {
        bid: "childBatch0001",
        description: "a child",
        age: 10.0,
        total: 1,
        pending: &["j2"],
        failed: &[],
        extra: &[("parent", "parentBatch001".to_owned())],
    };
    write_batch(&redis, child).await;
    let parent = Seed {
        bid: "parentBatch001",
        description: "a parent",
        age: 10.0,
        total: 1,
        pending: &["batch:childBatch0001"],
        failed: &[],
        extra: &[],
    };
    write_batch(&redis, parent).await;
    let app = app(&client);

    for (bid, why) in [
        ("stepBatch00001", "workflow"),
        ("childBatch0001", "parent"),
        ("parentBatch001", "child"),
    ] {
        let refused = post(
            &app,
            &format!("/jobs/batches/{bid}"),
            &[("action", "delete")],
        )
        .await;
        assert_eq!(refused.status, 409, "{bid}: {}", refused.body);
        assert!(refused.body.contains(why), "{bid}: {}", refused.body);
        assert_eq!(get(&app, &format!("/jobs/batches/{bid}")).await.status, 200);
        assert!(redis.keys().await.contains(&format!("batch:{bid}")));
    }
    let page = get(&app, "/jobs/batches/stepBatch00001").await;
    assert!(
        page.body.contains("no callback fires"),
        "the dialog says what it does"
    );
}

/// The calls of `command` since the last `CONFIG RESETSTAT`, from `INFO commandstats`.
fn calls(stats: &str, command: &str) -> u64 {
    stats
        .lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

/// A batch with 20,000 failures and a retry set of 50,000 entries: a page view reads counts
/// with HLEN/SCARD, the failed list with a capped HSCAN, and stops its search of the retry
/// and dead sets after a bounded number of ZSCANs, saying so. No HGETALL of the failed hash.
#[tokio::test]
async fn batches_web_a_batch_page_reads_a_bounded_amount() {
    let redis = TestRedis::start();
    let client = redis.client();
    let seed = Seed {
        bid: "bigBatch000001",
        description: "big",
        age: 10.0,
        total: 20_000,
        pending: &[],
        failed: &[],
        extra: &[],
    };
    write_batch(&redis, seed).await;
    let mut raw = redis.raw().await;
    for chunk in 0..20 {
        let mut pipe = redis::pipe();
        for i in chunk * 1_000..(chunk + 1) * 1_000 {
            let info = json!({
                "class": "ScoreUser", "error_class": "RuntimeError",
                "error_message": format!("no score for f{i}"),
                "failed_at": now() - 5.0, "dead": false,
            });
            pipe.hset(
                "batch:bigBatch000001:failed",
                format!("f{i}"),
                info.to_string(),
            )
            .ignore();
            pipe.sadd("batch:bigBatch000001:pending", format!("f{i}"))
                .ignore();
        }
        let _: () = pipe.query_async(&mut raw).await.unwrap();
    }
    for chunk in 0..50 {
        let mut pipe = redis::pipe();
        for i in chunk * 1_000..(chunk + 1) * 1_000 {
            pipe.zadd(
                "retry",
                failed_job(&format!("other{i}"), "otherBatch0001"),
                now() + 60.0 + f64::from(i),
            )
            .ignore();
        }
        let _: () = pipe.query_async(&mut raw).await.unwrap();
    }
    let app = app(&client);

    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut raw)
        .await
        .unwrap();
    let page = get(&app, "/jobs/batches/bigBatch000001").await;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    // One HGETALL: the batch's own hash; never the failed hash.
    assert!(calls(&stats, "hgetall") <= 1, "{stats}");
    assert!(calls(&stats, "hscan") <= 50, "{stats}");
    assert!(calls(&stats, "zscan") <= 20, "{stats}");
    assert!(page.body.contains("showing 500 of 20,000"), "{}", page.body);
    assert!(
        page.body.contains("not found in the first"),
        "{}",
        page.body
    );
}

/// A step's batch is linked only when it exists: a pending step's batch may not be created
/// yet (here: its data is gone), and the link would be a 404.
#[tokio::test]
async fn batches_web_a_step_links_its_batch_only_when_it_exists() {
    let redis = TestRedis::start();
    let client = redis.client();
    let wid = jobs::Workflow::new("links")
        .client(&client)
        .step_payload("fetch", &[], jobs::Payload::new("Fetch", vec![]))
        .push()
        .await
        .unwrap();
    let status = jobs::api::Workflows::new(&client)
        .status(&wid)
        .await
        .unwrap()
        .unwrap();
    let bid = status.steps[0].bid.clone();
    let app = app(&client);
    // Only a step's batch link has this prefix (the tab's link is `/jobs/batches`).
    let link = r#"href="/jobs/batches/"#;
    let page = get(&app, &format!("/jobs/workflows/{wid}")).await;
    let mut raw = redis.raw().await;
    let exists: bool = raw.exists(format!("batch:{bid}")).await.unwrap();
    assert_eq!(page.body.contains(link), exists, "{}", page.body);

    let _: () = raw.del(format!("batch:{bid}")).await.unwrap();
    let page = get(&app, &format!("/jobs/workflows/{wid}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains(link), "{}", page.body);
    assert!(page.body.contains(&bid), "the bid is still shown, unlinked");
}

/// A key of another type than the page expects stays a 503, with a message saying so.
#[tokio::test]
async fn batches_web_a_key_of_another_type_is_a_503_that_says_so() {
    let redis = TestRedis::start();
    let client = redis.client();
    let mut raw = redis.raw().await;
    let _: () = raw.sadd("workflow:AAAAAAAAAAAAAA", "x").await.unwrap();
    let page = get(&app(&client), "/jobs/workflows/AAAAAAAAAAAAAA").await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("holds another type"), "{}", page.body);
}

/// The workflows' pager keeps the order asked for.
#[tokio::test]
async fn batches_web_the_workflows_pager_keeps_the_order() {
    let redis = TestRedis::start();
    let client = redis.client();
    for n in 0..26 {
        jobs::Workflow::new(format!("w{n}"))
            .client(&client)
            .step_payload("only", &[], jobs::Payload::new("Only", vec![]))
            .push()
            .await
            .unwrap();
    }
    let page = get(&app(&client), "/jobs/workflows?order=asc").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("order=asc"), "{}", page.body);
}
