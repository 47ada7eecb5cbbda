//! `jobs` under another name, given to `crate = …` as a path and as a string.

extern crate jobs as my_jobs;

use my_jobs::Job;

/// `crate = path`.
#[my_jobs::job(crate = my_jobs)]
async fn as_path(id: u64) {
    let _ = id;
}

/// `crate = "path"`.
#[my_jobs::job(crate = "my_jobs", queue = "renamed")]
async fn as_string(id: u64) -> Result<(), my_jobs::JobError> {
    let _ = id;
    Ok(())
}

mod nested {
    /// A job in a module, with the crate named by an absolute path.
    #[my_jobs::job(crate = ::my_jobs)]
    pub(crate) async fn nested_job() {}
}

fn main() {
    let _ = AsPath::perform_async(1);
    let _ = AsString::set().perform_async(2);
    let _ = nested::NestedJob::perform_async();
    assert_eq!(AsPath::NAME, "AsPath");
    assert_eq!(AsString::OPTIONS.queue, "renamed");
    assert_eq!(<nested::NestedJob as Job>::NAME, "NestedJob");
    let _ = (as_path(1), as_string(2), nested::nested_job());
}
