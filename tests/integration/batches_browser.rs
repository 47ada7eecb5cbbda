//! The Batches pages in a real browser: real batches pushed with `jobs::Batch`, run by a real
//! worker (some jobs fail and wait to retry, one dies), then `/batches` and a batch's page in
//! Chromium, as a user sees them; saves `batches.png` and `batch.png`. A workflow with a step
//! that retries, on its page: `workflow.png`.

use std::time::Duration;

use fantoccini::Locator;
use jobs::api::{Batches, Workflows};
use jobs::workflow::StepState;
use jobs::{Batch, JobError, Workflow, job};

use crate::support::jobs::{CallLog, worker};
use crate::support::{RunningWorker, TestRedis, eventually};
use crate::web_browser::{ChromeDriver, click, open_browser, screenshot, serve_dashboard, text_of};

/// Scores one user; users 3 and 5 have no data yet, so their jobs fail and wait to retry.
#[job(name = "BatchesWeb::ScoreUser", retry = 25)]
async fn batches_web_score_user(id: u64) -> Result<(), JobError> {
    if id == 3 || id == 5 {
        return Err(JobError::msg(format!("no activity recorded for user {id}")));
    }
    Ok(())
}

/// Imports a file that is not there: dies at once (no retries), into the dead set.
#[job(name = "BatchesWeb::ImportFile", retry = 0)]
async fn batches_web_import_file(path: String) -> Result<(), JobError> {
    Err(JobError::msg(format!("{path}: no such file")))
}

/// The callback: publishes the scores.
#[job(name = "BatchesWeb::ScoresPublished")]
async fn batches_web_scores_published(date: String) {
    let _ = date;
}

/// The callback of a batch that went wrong.
#[job(name = "BatchesWeb::PageOnCall")]
async fn batches_web_page_on_call(what: String) {
    let _ = what;
}

#[tokio::test]
async fn batches_web_pages_in_chromium() {
    let redis = TestRedis::start();
    let client = redis.client();
    // A batch that succeeds, one nested in it, and one with a hostile description.
    let emails = Batch::new()
        .client(&client)
        .description("welcome emails")
        .on_success(BatchesWebScoresPublished {
            date: "2026-12-05".into(),
        })
        .push_all((0..4).map(|id| BatchesWebScoreUser { id: 10 + id }))
        .await
        .unwrap();
    let second_wave = Batch::new()
        .client(&client)
        .parent(&emails)
        .description("welcome emails, second wave")
        .push_all([BatchesWebScoreUser { id: 30 }])
        .await
        .unwrap();
    let hostile = "<script>alert('x')</script>";
    Batch::new()
        .client(&client)
        .description(hostile)
        .push_all([BatchesWebScoreUser { id: 20 }])
        .await
        .unwrap();
    // The batch the test looks at: 8 scores (two fail and retry) and an import that dies.
    let scores = Batch::new()
        .client(&client)
        .description("nightly scores 2026-12-06")
        .on_success(BatchesWebScoresPublished {
            date: "2026-12-06".into(),
        })
        .on_death(BatchesWebPageOnCall {
            what: "nightly scores".into(),
        })
        .push(BatchesWebImportFile {
            path: "/data/activity-2026-12-06.csv".into(),
        })
        .push_all((1..=8).map(|id| BatchesWebScoreUser { id }))
        .await
        .unwrap();

    let (base, stop, server) = serve_dashboard(&client).await;
    let driver = ChromeDriver::start();
    let browser = open_browser(&driver).await;
    // Before the worker runs: the parent lists its pending child, which links back to it.
    browser
        .goto(&format!("{base}/batches/{emails}"))
        .await
        .unwrap();
    // By link text: the href escapes a bid's `-` and `_`.
    for (link, title) in [
        (second_wave.as_str(), "welcome emails, second wave"),
        (emails.as_str(), "welcome emails"),
    ] {
        browser
            .find(Locator::XPath(&format!(
                "//dl[@class='fields']//a[text()='{link}']"
            )))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert_eq!(text_of(&browser, "h1").await, title);
    }

    let running = RunningWorker::start(worker(&redis, &CallLog::default()).concurrency(4));
    let batches = Batches::new(&client);
    eventually(
        Duration::from_secs(20),
        "every job of the batches to run once",
        async || {
            let scores = batches.get(&scores).await.unwrap().unwrap();
            let emails = batches.get(&emails).await.unwrap().unwrap();
            scores.complete_at.is_some() && emails.success_at.is_some()
        },
    )
    .await;
    running.stop(Duration::from_secs(5)).await;

    // The list: newest first, with progress and the callbacks reached.
    browser.goto(&format!("{base}/batches")).await.unwrap();
    assert_eq!(browser.title().await.unwrap(), "Batches · jobs");
    let row = format!("tr[data-bid='{scores}']");
    assert_eq!(
        text_of(&browser, &format!("{row} .figures")).await,
        "6 of 9 done"
    );
    // Newest first by creation time (ms; batches created in the same ms in either order).
    let mut created = Vec::new();
    for row in browser
        .find_all(Locator::Css("table.batches tr[data-bid]"))
        .await
        .unwrap()
    {
        let bid: jobs::Bid = row
            .attr("data-bid")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        created.push(
            batches
                .get(&bid)
                .await
                .unwrap()
                .unwrap()
                .created_at
                .unwrap(),
        );
    }
    assert_eq!(created.len(), 4);
    assert!(
        created.is_sorted_by(|a, b| a >= b),
        "newest first: {created:?}"
    );
    let callbacks = text_of(&browser, &format!("{row} td:last-child")).await;
    assert!(
        callbacks.contains("✓ complete") && callbacks.contains("✓ death"),
        "{callbacks}"
    );
    assert!(
        !callbacks.contains("✓ success"),
        "{callbacks}: two jobs still retry"
    );
    let done = text_of(&browser, &format!("tr[data-bid='{emails}'] td:last-child")).await;
    assert!(done.contains("✓ success"), "{done}");
    // The hostile description is text on the page, and ran no script.
    let shown = browser
        .find_all(Locator::Css("table.batches strong"))
        .await
        .unwrap();
    let mut texts = Vec::new();
    for element in shown {
        texts.push(element.text().await.unwrap());
    }
    assert!(texts.iter().any(|text| text == hostile), "{texts:?}");
    screenshot(&browser, "batches").await;

    // The batch's page: counts, callbacks, the failed jobs and where they wait.
    browser
        .find(Locator::LinkText("nightly scores 2026-12-06"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text_of(&browser, "h1").await, "nightly scores 2026-12-06");
    assert_eq!(
        text_of(&browser, "dd.progress .figures").await,
        "6 of 9 done"
    );
    let death = text_of(&browser, "tr[data-event=death]").await;
    assert!(
        death.contains("BatchesWeb::PageOnCall") && death.contains('✓'),
        "{death}"
    );
    let success = text_of(&browser, "tr[data-event=success]").await;
    assert!(success.contains("not yet"), "{success}");
    let failed = browser
        .find_all(Locator::Css("table.failed tr[data-member]"))
        .await
        .unwrap();
    assert_eq!(failed.len(), 3, "two retrying and one dead");
    let errors = text_of(&browser, "table.failed").await;
    assert!(
        errors.contains("no activity recorded for user 3"),
        "{errors}"
    );
    assert!(errors.contains("no such file"), "{errors}");
    screenshot(&browser, "batch").await;

    // A failed job's link leads to its retry entry, which links back to the batch.
    let retrying = browser
        .find(Locator::XPath(
            "//tr[td[contains(., 'user 5')]]//a[@class='entry']",
        ))
        .await
        .unwrap();
    assert_eq!(retrying.text().await.unwrap(), "retrying");
    retrying.click().await.unwrap();
    let url = browser.current_url().await.unwrap();
    assert!(url.path().starts_with("/jobs/retries/"), "{url}");
    assert_eq!(text_of(&browser, "h1").await, "BatchesWeb::ScoreUser");
    assert!(text_of(&browser, "pre").await.contains('5'));
    browser
        .find(Locator::LinkText(scores.as_str()))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text_of(&browser, "h1").await, "nightly scores 2026-12-06");
    // The dead job's link leads to its dead entry.
    browser
        .find(Locator::XPath(
            "//tr[td[contains(., 'no such file')]]//a[@class='entry']",
        ))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let url = browser.current_url().await.unwrap();
    assert!(url.path().starts_with("/jobs/morgue/"), "{url}");
    assert_eq!(text_of(&browser, "h1").await, "BatchesWeb::ImportFile");

    browser.close().await.unwrap();
    let _ = stop.send(());
    let _ = server.await;
}

#[tokio::test]
async fn batches_web_workflow_in_chromium() {
    let redis = TestRedis::start();
    let client = redis.client();
    // Charging fails (user 3 has no data) and waits to retry: sending waits for it.
    let wid = Workflow::new("monthly invoices")
        .client(&client)
        .step("fetch", BatchesWebScoreUser { id: 1 })
        .step_after("render", &["fetch"], BatchesWebScoreUser { id: 2 })
        .step_after("charge", &["fetch"], BatchesWebScoreUser { id: 3 })
        .step_after("send", &["render", "charge"], BatchesWebScoreUser { id: 4 })
        .push()
        .await
        .unwrap();
    let running = RunningWorker::start(worker(&redis, &CallLog::default()).concurrency(4));
    let workflows = Workflows::new(&client);
    eventually(
        Duration::from_secs(20),
        "render to succeed and charge to fail",
        async || {
            let status = workflows.status(&wid).await.unwrap().unwrap();
            let state = |name: &str| status.step(name).unwrap().state;
            state("render") == StepState::Succeeded && state("charge") == StepState::Retrying
        },
    )
    .await;
    running.stop(Duration::from_secs(5)).await;

    let (base, stop, server) = serve_dashboard(&client).await;
    let driver = ChromeDriver::start();
    let browser = open_browser(&driver).await;
    browser.goto(&format!("{base}/workflows")).await.unwrap();
    browser
        .find(Locator::LinkText("monthly invoices"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text_of(&browser, "h1").await, "monthly invoices");
    assert_eq!(
        text_of(&browser, "dd.progress .figures").await,
        "2 of 4 steps done"
    );
    let state =
        async |step: &str| text_of(&browser, &format!("tr[data-step={step}] td.state")).await;
    assert_eq!(state("fetch").await, "succeeded");
    assert!(
        state("charge")
            .await
            .contains("no activity recorded for user 3"),
        "the retrying step shows its error"
    );
    assert!(state("charge").await.starts_with("retrying"));
    assert_eq!(state("send").await, "waiting");
    let after = text_of(&browser, "tr[data-step=send] td:nth-child(2)").await;
    assert_eq!(after, "render, charge");
    screenshot(&browser, "workflow").await;

    // The step's batch page links back to its workflow.
    click(&browser, "tr[data-step=charge] td:last-child a").await;
    let workflow_link = text_of(&browser, "dl.fields a[href*='/workflows/']").await;
    assert_eq!(workflow_link, wid.as_str());
    let step = text_of(&browser, "dl.fields strong").await;
    assert_eq!(step, "charge");
    click(&browser, "dl.fields a[href*='/workflows/']").await;
    assert_eq!(text_of(&browser, "h1").await, "monthly invoices");

    browser.close().await.unwrap();
    let _ = stop.send(());
    let _ = server.await;
}
