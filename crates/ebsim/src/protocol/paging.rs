//! `MaxRecords`/`NextToken` paging. A token names the first item of the next page by its stable
//! sequence number, so items added meanwhile do not shift pages.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::ApiError;

/// Largest and default page size of the service.
pub const MAX_RECORDS: usize = 1000;

/// Checks `MaxRecords` (1–1000); absent means the service maximum.
pub fn max_records(value: Option<i64>) -> Result<usize, ApiError> {
    match value {
        None => Ok(MAX_RECORDS),
        Some(n) if (1..=MAX_RECORDS as i64).contains(&n) => Ok(n as usize),
        Some(n) => {
            let (cmp, bound) = if n < 1 { ("greater", 1) } else { ("less", MAX_RECORDS) };
            Err(ApiError::new(
                400,
                "ValidationError",
                format!(
                    "1 validation error detected: Value '{n}' at 'maxRecords' failed to satisfy constraint: Member must have value {cmp} than or equal to {bound}"
                ),
            ))
        }
    }
}

/// Encodes a cursor for operation `op`.
pub fn encode_token(op: &str, cursor: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("ebsim1:{op}:{cursor}"))
}

/// Decodes a token made by [`encode_token`] for the same operation.
pub fn decode_token(op: &str, token: &str) -> Result<u64, ApiError> {
    let bad = || ApiError::invalid_value(format!("Invalid NextToken: {token}"));
    let raw = URL_SAFE_NO_PAD.decode(token.trim().as_bytes()).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let rest = text.strip_prefix("ebsim1:").ok_or_else(bad)?;
    let (token_op, cursor) = rest.rsplit_once(':').ok_or_else(bad)?;
    if token_op != op {
        return Err(bad());
    }
    cursor.parse().map_err(|_| bad())
}

/// Cuts one page out of `items`, which are ordered by `seq` ascending or (`descending`) newest first.
pub fn page<T>(
    op: &str,
    items: Vec<T>,
    seq: impl Fn(&T) -> u64,
    descending: bool,
    max: usize,
    token: Option<&str>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let start = match token {
        None => 0,
        Some(t) => {
            let cursor = decode_token(op, t)?;
            items
                .iter()
                .position(|i| if descending { seq(i) <= cursor } else { seq(i) >= cursor })
                .unwrap_or(items.len())
        }
    };
    let mut rest: Vec<T> = items.into_iter().skip(start).collect();
    let next = if rest.len() > max { Some(encode_token(op, seq(&rest[max]))) } else { None };
    rest.truncate(max);
    Ok((rest, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_through_descending_items() {
        let items: Vec<u64> = (1..=7).rev().collect();
        let (p1, t1) = page("DescribeEvents", items.clone(), |x| *x, true, 3, None).unwrap();
        assert_eq!(p1, vec![7, 6, 5]);
        let t1 = t1.expect("a second page");
        // A newer item arriving between calls does not shift the next page.
        let mut newer = vec![8];
        newer.extend(items.clone());
        let (p2, t2) = page("DescribeEvents", newer.clone(), |x| *x, true, 3, Some(&t1)).unwrap();
        assert_eq!(p2, vec![4, 3, 2]);
        let (p3, t3) = page("DescribeEvents", newer, |x| *x, true, 3, t2.as_deref()).unwrap();
        assert_eq!(p3, vec![1]);
        assert_eq!(t3, None);
    }

    #[test]
    fn pages_through_ascending_items_with_a_deleted_cursor() {
        let items = vec![10u64, 20, 30, 40];
        let (p1, t1) = page("DescribeEnvironments", items, |x| *x, false, 2, None).unwrap();
        assert_eq!(p1, vec![10, 20]);
        let without_30 = vec![10u64, 20, 40];
        let (p2, t2) = page("DescribeEnvironments", without_30, |x| *x, false, 2, t1.as_deref()).unwrap();
        assert_eq!(p2, vec![40]);
        assert!(t2.is_none());
    }

    #[test]
    fn exact_fit_has_no_token() {
        let (p, t) = page("X", vec![1u64, 2], |x| *x, false, 2, None).unwrap();
        assert_eq!(p.len(), 2);
        assert!(t.is_none());
    }

    #[test]
    fn rejects_foreign_and_garbage_tokens() {
        let t = encode_token("DescribeEvents", 5);
        assert_eq!(decode_token("DescribeEvents", &t), Ok(5));
        assert!(decode_token("DescribeEnvironments", &t).is_err());
        assert_eq!(decode_token("DescribeEvents", "%%%").map_err(|e| e.code), Err("InvalidParameterValue".into()));
    }

    #[test]
    fn max_records_bounds() {
        assert_eq!(max_records(None), Ok(1000));
        assert_eq!(max_records(Some(1)), Ok(1));
        assert!(max_records(Some(0)).is_err());
        assert!(max_records(Some(1001)).unwrap_err().message.contains("less than or equal to 1000"));
    }
}
