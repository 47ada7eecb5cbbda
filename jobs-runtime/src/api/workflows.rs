//! Workflows as the dashboard lists them: [`Workflows`].

use super::page::Page;
use crate::client::Client;
use crate::error::Error;
use crate::workflow::{Workflow, WorkflowId, WorkflowStatus, WorkflowSummary};

/// The workflows in Redis (`jobs::Workflow`), listed by creation from the `workflows` index.
///
/// ```no_run
/// # async fn example(client: jobs_runtime::Client) -> Result<(), jobs_runtime::Error> {
/// use jobs_runtime::api::{Page, Workflows};
///
/// for workflow in Workflows::new(&client).page(Page::first(25)).await? {
///     println!(
///         "{} {}: {} ({}/{} steps succeeded)",
///         workflow.id,
///         workflow.description,
///         workflow.state.as_str(),
///         workflow.succeeded,
///         workflow.total,
///     );
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Workflows {
    /// The Redis and namespace the workflows live in.
    client: Client,
}

impl Workflows {
    /// The workflows of `client`'s Redis (and namespace).
    pub fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
        }
    }

    /// How many workflows the index lists (those pushed within their retention).
    pub async fn size(&self) -> Result<usize, Error> {
        self.client
            .redis()
            .command(redis::cmd("ZCARD").arg(self.client.keys().workflows()))
            .await
    }

    /// One page of workflows, by creation (newest first unless the page says otherwise), each
    /// as a [`WorkflowSummary`] (its hash and how many steps succeeded or died, read for the
    /// whole page in one round trip; [`status`](Self::status) reads one workflow's steps). A
    /// workflow whose keys expired, or are not as `jobs` writes them, is left out (with a
    /// warning), not an error for the page.
    pub async fn page(&self, page: Page) -> Result<Vec<WorkflowSummary>, Error> {
        let len = self.size().await?;
        let Some((start, stop)) = page.oldest_first_range(len) else {
            return Ok(Vec::new());
        };
        let mut ids: Vec<String> = self
            .client
            .redis()
            .command(
                redis::cmd("ZRANGE")
                    .arg(self.client.keys().workflows())
                    .arg(start)
                    .arg(stop),
            )
            .await?;
        if page.order == super::Order::NewestFirst {
            ids.reverse();
        }
        let mut wids = Vec::with_capacity(ids.len());
        for id in ids {
            // Only `jobs` writes the index; an id of another shape is left out.
            match WorkflowId::parse(&id) {
                Ok(wid) => wids.push(wid),
                Err(error) => {
                    tracing::warn!(%error, "the workflows index lists no workflow id: left out");
                }
            }
        }
        crate::workflow::summaries(&self.client, &wids).await
    }

    /// Workflow `wid` with each step's state, or `None` when there is no such workflow
    /// (never pushed, or its retention ran out): [`Workflow::status`].
    pub async fn status(&self, wid: &WorkflowId) -> Result<Option<WorkflowStatus>, Error> {
        Workflow::status(&self.client, wid).await
    }
}
