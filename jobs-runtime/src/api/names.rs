//! Names read from Redis sets (`queues`, `processes`) as bytes, since redis-rs refuses to read
//! a reply holding a member that is not UTF-8 as `String`s, which would fail every page.

/// The members that are UTF-8; the others cannot name a queue or a process here, so they are
/// left out (and left in place: a read never writes).
pub(crate) fn utf8_only(members: Vec<Vec<u8>>) -> Vec<String> {
    members
        .into_iter()
        .filter_map(|member| String::from_utf8(member).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn members_that_are_not_utf8_are_left_out() {
        let members = vec![b"default".to_vec(), b"\xffq".to_vec(), "caf\u{e9}".into()];
        assert_eq!(super::utf8_only(members), ["default", "caf\u{e9}"]);
    }
}
