use jobs::job;

struct Invoice {
    id: u64,
}

#[job]
async fn send_invoice(invoice: Invoice) {
    let _ = invoice.id;
}

fn main() {}
