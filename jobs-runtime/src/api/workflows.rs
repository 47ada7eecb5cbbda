//! Workflows as the dashboard lists them: [`Workflows`].

use super::page::Page;
use crate::client::Client;
use crate::error::Error;
use crate::workflow::{Workflow, WorkflowId, WorkflowStatus};

/// The workflows in Redis (`jobs::Workflow`), listed by creation from the `workflows` index.
///
/// ```no_run
/// # async fn example(client: jobs_runtime::Client) -> Result<(), jobs_runtime::Error> {
/// use jobs_runtime::api::{Page, Workflows};
///
/// for workflow in Workflows::new(&client).page(Page::first(25)).await? {
///     println!("{} {}: {}", workflow.id, workflow.description, workflow.state.as_str());
///     for step in &workflow.steps {
///         println!("  {} {}", step.name, step.state.as_str());
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Workflows {
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
    /// with its steps as [`status`](Self::status) reads it; a workflow whose keys expired is
    /// left out.
    pub async fn page(&self, page: Page) -> Result<Vec<WorkflowStatus>, Error> {
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
        let mut listed = Vec::with_capacity(ids.len());
        for id in ids {
            // Only `jobs` writes the index; an id of another shape is left out.
            let Ok(wid) = WorkflowId::parse(&id) else {
                tracing::warn!(
                    id,
                    "the workflows index lists an id that is no workflow id: left out"
                );
                continue;
            };
            if let Some(status) = self.status(&wid).await? {
                listed.push(status);
            }
        }
        Ok(listed)
    }

    /// Workflow `wid` with each step's state, or `None` when there is no such workflow
    /// (never pushed, or its retention ran out): [`Workflow::status`].
    pub async fn status(&self, wid: &WorkflowId) -> Result<Option<WorkflowStatus>, Error> {
        Workflow::status(&self.client, wid).await
    }
}
