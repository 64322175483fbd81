//! Whether an event may be acted on at all (pure, table-tested).
//!
//! Anyone allowed to invoke the function can hand it any event, so before any AWS call and before
//! any PUT the provisioner checks that the event is CloudFormation's, for a stack of its own:
//!
//! * **The ResponseURL** is `https` to CloudFormation's response bucket *of the function's own
//!   Region* (the ServiceToken must be in the stack's Region, so the bucket always is), virtual-hosted
//!   on an S3 endpoint of the function's own partition:
//!   `cloudformation-custom-resource-response-<region without dashes>.` followed by
//!   `s3.amazonaws.com` (aws only), `s3-<region>.amazonaws.com` or `s3.<region>.amazonaws.com`
//!   (aws, aws-us-gov), or the same two regional forms on `amazonaws.com.cn` (aws-cn). The bucket
//!   and the endpoint both have to be of the function's partition: S3 bucket names are unique per
//!   partition only, so a name that is CloudFormation's in GovCloud may be anyone's in the aws
//!   partition. The authority is letters, digits, `.` and `-` with at most `:443`: no user info, no
//!   other port, nothing a URL parser could read as another host. Other partitions (ISO, EUSC) are
//!   refused: their response hosts are not known to this build.
//! * **The StackId** is a CloudFormation stack ARN in the partition, Region and account of the
//!   function's own ARN (the invocation's `invoked_function_arn`); an unknown own ARN is a refusal
//!   too (nothing to compare with).
//!
//! A refused event is not answered: the URL is not CloudFormation's, or it belongs to a stack
//! this function does not serve (a PUT there would hand another stack this function's answer or
//! Data). The handler logs why and returns an error (see [`crate::handle`]).
//!
//! `MULTISITE_PROVISIONER_ALLOW_LOCAL_RESPONSE_URL=1` (tests, the drill, the local invoke test;
//! off by default) also allows `http`/`https` to a loopback host (`127.0.0.0/8`, `[::1]`,
//! `localhost`) on any port: the local ResponseURL server.

use crate::regions::partition;
use std::net::Ipv4Addr;

const BUCKET_PREFIX: &str = "cloudformation-custom-resource-response-";

/// Why an event is refused. Messages name the part of the event that is wrong; they quote the
/// ResponseURL's host only, never its path or query (a real pre-signed URL is a credential).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    #[error("the event has no ResponseURL")]
    NoResponseUrl,
    #[error("the ResponseURL is not an https URL (scheme `{0}`)")]
    NotHttps(String),
    #[error(
        "the ResponseURL's authority `{0}` is not a plain host name (user info, a port other than 443 or unexpected characters)"
    )]
    Authority(String),
    #[error(
        "the ResponseURL's host `{host}` is not CloudFormation's response bucket for {region} (expected one of {expected})"
    )]
    Host { host: String, region: String, expected: String },
    #[error(
        "the ResponseURL cannot be checked in partition {0}: this build knows CloudFormation's response buckets in aws, aws-cn and aws-us-gov only"
    )]
    UnknownPartition(&'static str),
    #[error("this function's own ARN is unknown (`{0}`), so the StackId cannot be checked")]
    UnknownFunctionArn(String),
    #[error("the StackId `{stack_id}` is not a stack of this function's partition, Region and account ({expected})")]
    ForeignStack { stack_id: String, expected: String },
}

/// What the checks compare against.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The function's Region (AWS_REGION).
    pub home_region: &'a str,
    /// The invocation's `invoked_function_arn`.
    pub function_arn: &'a str,
    pub allow_local_response_url: bool,
}

/// Checks `response_url` and `stack_id`; `Ok` means the event may be worked on and answered.
pub fn check(origin: &Origin<'_>, response_url: Option<&str>, stack_id: &str) -> Result<(), Untrusted> {
    check_response_url(origin, response_url.ok_or(Untrusted::NoResponseUrl)?)?;
    check_stack(origin.function_arn, stack_id)
}

pub fn check_response_url(origin: &Origin<'_>, url: &str) -> Result<(), Untrusted> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| Untrusted::NotHttps(String::new()))?;
    // The authority ends where RFC 3986 (and the http crate the PUT uses) ends it.
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if origin.allow_local_response_url && matches!(scheme, "http" | "https") && is_loopback(authority) {
        return Ok(());
    }
    if scheme != "https" {
        return Err(Untrusted::NotHttps(scheme.chars().take(20).collect()));
    }
    let host = authority.strip_suffix(":443").unwrap_or(authority).to_ascii_lowercase();
    if host.is_empty() || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-') {
        return Err(Untrusted::Authority(authority.chars().take(100).collect()));
    }
    let expected = response_hosts(origin.home_region)?;
    if expected.contains(&host) {
        return Ok(());
    }
    Err(Untrusted::Host {
        host: host.chars().take(100).collect(),
        region: origin.home_region.to_owned(),
        expected: expected.join(", "),
    })
}

/// The hosts of CloudFormation's response bucket for a stack in `region`.
pub fn response_hosts(region: &str) -> Result<Vec<String>, Untrusted> {
    let bucket = format!("{BUCKET_PREFIX}{}", region.replace('-', ""));
    let regional =
        |domain: &str| vec![format!("{bucket}.s3-{region}.{domain}"), format!("{bucket}.s3.{region}.{domain}")];
    match partition(region) {
        "aws" => Ok([vec![format!("{bucket}.s3.amazonaws.com")], regional("amazonaws.com")].concat()),
        // The global endpoint is the aws partition's: never for another partition's bucket.
        "aws-us-gov" => Ok(regional("amazonaws.com")),
        "aws-cn" => Ok(regional("amazonaws.com.cn")),
        other => Err(Untrusted::UnknownPartition(other)),
    }
}

fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix("[::1]") {
        Some(port) => return port.is_empty() || is_port(port),
        None => match authority.rsplit_once(':') {
            Some((host, port)) if is_port(&format!(":{port}")) => host,
            Some(_) => return false,
            None => authority,
        },
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_port(text: &str) -> bool {
    text.strip_prefix(':').is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The partition, Region and account of an ARN of `service` whose resource starts with
/// `resource_prefix`.
fn arn_scope<'a>(arn: &'a str, service: &str, resource_prefix: &str) -> Option<(&'a str, &'a str, &'a str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some(s), Some(region), Some(account), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let valid = s == service
        && !partition.is_empty()
        && !region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource.starts_with(resource_prefix);
    valid.then_some((partition, region, account))
}

pub fn check_stack(function_arn: &str, stack_id: &str) -> Result<(), Untrusted> {
    let own = arn_scope(function_arn.trim(), "lambda", "function:")
        .ok_or_else(|| Untrusted::UnknownFunctionArn(function_arn.chars().take(200).collect()))?;
    if arn_scope(stack_id, "cloudformation", "stack/") == Some(own) {
        return Ok(());
    }
    let (partition, region, account) = own;
    Err(Untrusted::ForeignStack {
        stack_id: stack_id.chars().take(300).collect(),
        expected: format!("arn:{partition}:cloudformation:{region}:{account}:stack/..."),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:multisite-provisioner";
    const STACK: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/user-sessions/5b7c9a40-8e6f-11ef-9c8e";

    fn origin(home: &str, allow_local: bool) -> Origin<'_> {
        Origin { home_region: home, function_arn: ARN, allow_local_response_url: allow_local }
    }

    #[test]
    fn cloudformation_response_buckets_of_the_own_region_and_partition_are_trusted() {
        let ok = [
            (
                "us-east-1",
                "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3Aaws/x?X-Amz-Signature=1",
            ),
            ("us-east-1", "https://cloudformation-custom-resource-response-useast1.s3.us-east-1.amazonaws.com/k"),
            ("us-west-2", "https://cloudformation-custom-resource-response-uswest2.s3-us-west-2.amazonaws.com/k?a=b"),
            ("eu-west-1", "https://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com:443/k"),
            ("eu-west-1", "https://CloudFormation-Custom-Resource-Response-EuWest1.S3.amazonaws.com/k"),
            ("cn-north-1", "https://cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com.cn/k"),
            (
                "cn-northwest-1",
                "https://cloudformation-custom-resource-response-cnnorthwest1.s3-cn-northwest-1.amazonaws.com.cn/k",
            ),
            (
                "us-gov-west-1",
                "https://cloudformation-custom-resource-response-usgovwest1.s3-us-gov-west-1.amazonaws.com/k",
            ),
            (
                "us-gov-east-1",
                "https://cloudformation-custom-resource-response-usgoveast1.s3.us-gov-east-1.amazonaws.com/k",
            ),
            ("us-east-1", "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com"),
        ];
        for (home, url) in ok {
            assert_eq!(check_response_url(&origin(home, false), url), Ok(()), "{home} {url}");
        }
    }

    #[test]
    fn every_other_response_url_is_refused_saying_why() {
        // (home, url, a phrase of the reason)
        let refused = [
            (
                "us-east-1",
                "http://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/k",
                "not an https URL (scheme `http`)",
            ),
            ("us-east-1", "s3://cloudformation-custom-resource-response-useast1/k", "scheme `s3`"),
            ("us-east-1", "ftp://x", "scheme `ftp`"),
            ("us-east-1", "cloudformation-custom-resource-response-useast1.s3.amazonaws.com/k", "not an https URL"),
            (
                "us-east-1",
                "https://attacker.example/k",
                "host `attacker.example` is not CloudFormation's response bucket for us-east-1",
            ),
            (
                "us-east-1",
                "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com.attacker.example/k",
                "is not CloudFormation's response bucket",
            ),
            (
                "us-east-1",
                "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com@attacker.example/k",
                "user info",
            ),
            (
                "us-east-1",
                "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com:8443/k",
                "a port other than 443",
            ),
            (
                "us-east-1",
                "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com./k",
                "is not CloudFormation's response bucket",
            ),
            (
                "us-east-1",
                "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com\\@evil/k",
                "unexpected characters",
            ),
            ("us-east-1", "https:///k", "authority ``"),
            // Another Region's bucket: not this stack's.
            (
                "us-east-1",
                "https://cloudformation-custom-resource-response-euwest1.s3.amazonaws.com/k",
                "for us-east-1",
            ),
            (
                "eu-west-1",
                "https://cloudformation-custom-resource-response-euwest1.s3-us-east-1.amazonaws.com/k",
                "for eu-west-1",
            ),
            // GovCloud's and China's bucket names on the aws partition's endpoints: anyone's there.
            (
                "us-gov-west-1",
                "https://cloudformation-custom-resource-response-usgovwest1.s3.amazonaws.com/k",
                "for us-gov-west-1",
            ),
            (
                "cn-north-1",
                "https://cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com/k",
                "for cn-north-1",
            ),
            (
                "cn-north-1",
                "https://cloudformation-custom-resource-response-cnnorth1.s3.amazonaws.com/k",
                "for cn-north-1",
            ),
            (
                "us-iso-east-1",
                "https://cloudformation-custom-resource-response-usisoeast1.s3.us-iso-east-1.c2s.ic.gov/k",
                "partition aws-iso",
            ),
            // The local server only with the switch on.
            ("us-east-1", "http://127.0.0.1:8080/x", "scheme `http`"),
            ("us-east-1", "https://localhost:8080/x", "authority `localhost:8080`"),
        ];
        for (home, url, phrase) in refused {
            let err = check_response_url(&origin(home, false), url).expect_err(url);
            assert!(err.to_string().contains(phrase), "{url}: {err}");
            assert!(!err.to_string().contains("/k"), "never the path: {err}");
        }
    }

    #[test]
    fn the_test_switch_allows_loopback_hosts_only() {
        let local = origin("us-east-1", true);
        for url in [
            "http://127.0.0.1:41234/x?y",
            "http://127.9.9.9/x",
            "https://localhost:9/x",
            "http://[::1]:80/x",
            "http://LOCALHOST",
        ] {
            assert_eq!(check_response_url(&local, url), Ok(()), "{url}");
        }
        for url in [
            "http://10.0.0.1:80/x",
            "http://169.254.169.254/latest/meta-data",
            "http://127.0.0.1.attacker.example/x",
            "http://127.0.0.1:80@attacker.example/x",
            "http://localhost:80:80/x",
            "http://[::2]/x",
            "ftp://127.0.0.1/x",
        ] {
            assert!(check_response_url(&local, url).is_err(), "{url}");
        }
        let s3 = "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/k";
        assert_eq!(check_response_url(&local, s3), Ok(()), "CloudFormation's own still is");
    }

    #[test]
    fn the_stack_must_be_in_the_functions_partition_region_and_account() {
        assert_eq!(check_stack(ARN, STACK), Ok(()));
        assert_eq!(check_stack(&format!("{ARN}:live"), STACK), Ok(()), "a qualified ARN");
        let foreign = [
            "arn:aws:cloudformation:us-east-1:210987654321:stack/user-sessions/5b7c9a40",
            "arn:aws:cloudformation:eu-west-1:123456789012:stack/user-sessions/5b7c9a40",
            "arn:aws-cn:cloudformation:us-east-1:123456789012:stack/user-sessions/5b7c9a40",
            "arn:aws:sns:us-east-1:123456789012:stack/user-sessions",
            "arn:aws:cloudformation:us-east-1:123456789012:changeSet/x/y",
            "arn:aws:cloudformation:us-east-1:12345678901:stack/short-account/x",
            "",
            "user-sessions",
        ];
        for stack in foreign {
            let err = check_stack(ARN, stack).expect_err(stack);
            assert!(
                matches!(&err, Untrusted::ForeignStack { expected, .. } if expected == "arn:aws:cloudformation:us-east-1:123456789012:stack/..."),
                "{err}"
            );
        }
        for arn in
            ["", "function-arn", "arn:aws:lambda:us-east-1:123456789012:layer:x", "arn:aws:iam::123456789012:role/x"]
        {
            assert!(matches!(check_stack(arn, STACK), Err(Untrusted::UnknownFunctionArn(_))), "{arn}");
        }
    }

    #[test]
    fn the_url_is_checked_before_the_stack_and_a_missing_url_is_named() {
        let o = origin("us-east-1", false);
        assert_eq!(check(&o, None, STACK), Err(Untrusted::NoResponseUrl));
        assert!(matches!(check(&o, Some("https://attacker.example/"), "nope"), Err(Untrusted::Host { .. })));
        let s3 = "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/k";
        assert!(matches!(check(&o, Some(s3), "nope"), Err(Untrusted::ForeignStack { .. })));
        assert_eq!(check(&o, Some(s3), STACK), Ok(()));
    }
}
