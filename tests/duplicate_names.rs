//! Two job types with one wire name: the registry refuses them and names both.
//!
//! A binary of its own, because the duplicate would break the registry of every other test.

use jobs::{Error, Registry, job};

mod billing {
    /// Ruby's `InvoiceJob`, as billing defines it.
    #[jobs::job(name = "InvoiceJob")]
    pub(crate) async fn send_invoice(id: u64) {
        let _ = id;
    }
}

/// Another job that claims the same wire name by mistake.
#[job(name = "InvoiceJob")]
async fn print_invoice(id: u64) {
    let _ = id;
}

#[test]
fn two_jobs_with_one_wire_name_are_reported_with_both_locations() {
    let error = Registry::from_inventory().unwrap_err();
    let Error::DuplicateJobName {
        name,
        first,
        second,
    } = &error
    else {
        panic!("expected DuplicateJobName, got {error:?}");
    };
    assert_eq!(name, "InvoiceJob");
    let both = format!("{first} {second}");
    assert!(both.contains("billing::SendInvoice"), "{both}");
    assert!(both.contains("PrintInvoice"), "{both}");
    assert!(both.contains("duplicate_names.rs:"), "{both}");
    assert!(
        error.to_string().contains("#[job(name = \"...\")]"),
        "{error}"
    );
    // The functions are still there to call.
    let _ = (billing::send_invoice(1), print_invoice(2));
}
