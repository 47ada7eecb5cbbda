//! Workflows as the dashboard shows them: every workflow newest first, and one workflow with
//! its steps' states and dependencies, read by [`Workflow::status`] and [`Workflow::list`]
//! (`docs/batches.md`, "Workflows").

use super::page::{MAX_PAGE_SIZE, Page};
use crate::client::Client;
use crate::error::Error;
use crate::workflow::{Workflow, WorkflowId, WorkflowStatus};

/// The workflows in `client`'s Redis.
///
/// ```no_run
/// # async fn example() -> Result<(), jobs_runtime::Error> {
/// use jobs_runtime::api::{Page, Workflows};
///
/// let workflows = Workflows::new(&jobs_runtime::Client::global()?);
/// for workflow in workflows.page(Page::first(25)).await? {
///     println!("{}: {}", workflow.description, workflow.state.as_str());
///     for step in &workflow.steps {
///         println!("  {} after {:?}: {}", step.name, step.depends_on, step.state.as_str());
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Workflows {
    /// The Redis it reads.
    client: Client,
}

impl Workflows {
    /// The workflows in `client`'s Redis.
    pub fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
        }
    }

    /// How many workflows `workflows` lists (those expired since included).
    pub async fn size(&self) -> Result<usize, Error> {
        self.client
            .redis()
            .command(redis::cmd("ZCARD").arg(self.client.keys().workflows()))
            .await
    }

    /// A page of workflows, newest first (the page's order is not used: the list is always
    /// newest first), each with its steps; a workflow whose keys expired is left out.
    pub async fn page(&self, page: Page) -> Result<Vec<WorkflowStatus>, Error> {
        Workflow::list(&self.client, page.offset, page.count.min(MAX_PAGE_SIZE)).await
    }

    /// The workflow `wid` with its steps, or `None` when Redis holds nothing of it.
    pub async fn get(&self, wid: &WorkflowId) -> Result<Option<WorkflowStatus>, Error> {
        Workflow::status(&self.client, wid).await
    }
}
