//! The partner guide's attribute mapping and condition, evaluated for an AWS ARN as Google's
//! CEL evaluates them, so that the sender can be told which `google.subject` and
//! `attribute.aws_role` its identity yields and which principal set the partner must bind:
//!
//! ```text
//! google.subject     = assertion.arn
//! attribute.aws_role = assertion.arn.contains('role/')
//!                        ? assertion.arn.extract('role/{role_name}/') : assertion.arn
//! condition          : assertion.arn.startsWith('arn:aws:sts::ACCOUNT:assumed-role/ROLE/')
//! ```

/// The guide's `attribute.aws_role` expression, as the partner kit writes it.
pub const AWS_ROLE_MAPPING: &str =
    "assertion.arn.contains('role/') ? assertion.arn.extract('role/{role_name}/') : assertion.arn";

/// The attributes the guide's mapping gives an ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// `google.subject`: the ARN itself.
    pub subject: String,
    /// `attribute.aws_role`.
    pub aws_role: String,
}

/// Evaluates the guide's mapping for `arn` (what AWS STS GetCallerIdentity answers).
pub fn map(arn: &str) -> Mapped {
    let aws_role = if arn.contains("role/") {
        extract(arn, "role/{role_name}/")
    } else {
        arn.to_owned()
    };
    Mapped {
        subject: arn.to_owned(),
        aws_role,
    }
}

/// CEL's `string.extract(template)` as Google defines it: the text between the first
/// occurrence of the template's part before `{…}` and the next occurrence of its part after
/// (to the end when that part is empty); the empty string when either is missing.
pub fn extract(text: &str, template: &str) -> String {
    let Some((before, rest)) = template.split_once('{') else {
        return String::new();
    };
    let Some((_, after)) = rest.split_once('}') else {
        return String::new();
    };
    let Some(start) = text.find(before) else {
        return String::new();
    };
    let tail = &text[start + before.len()..];
    if after.is_empty() {
        return tail.to_owned();
    }
    match tail.find(after) {
        Some(end) => tail[..end].to_owned(),
        None => String::new(),
    }
}

/// The guide's attribute condition, admitting only sessions of `role_name` in `account`.
pub fn condition(account: &str, role_name: &str) -> String {
    format!(
        "assertion.arn.startsWith('{}')",
        condition_prefix(account, role_name)
    )
}

/// What the condition's `startsWith` compares an ARN with.
pub fn condition_prefix(account: &str, role_name: &str) -> String {
    format!("arn:aws:sts::{account}:assumed-role/{role_name}/")
}

/// The principal set the partner binds `roles/iam.workloadIdentityUser` to for `aws_role`.
pub fn principal_set(project_number: &str, pool_id: &str, aws_role: &str) -> String {
    format!(
        "principalSet://iam.googleapis.com/projects/{project_number}/locations/global/\
         workloadIdentityPools/{pool_id}/attribute.aws_role/{aws_role}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_follows_google_s_template_semantics() {
        // Google's documented examples.
        assert_eq!(
            extract(
                "projects/_/buckets/acme-orders-aaa/objects/data_lake/orders/order_date=2019-11-03/aef87g87ae0876",
                "/order_date={date}/"
            ),
            "2019-11-03"
        );
        assert_eq!(
            extract(
                "arn:aws:sts::123456789012:assumed-role/my-role/session",
                "assumed-role/{role_name}/"
            ),
            "my-role"
        );
        // Nothing after the placeholder: to the end. A missing part before or after: "".
        assert_eq!(
            extract("projects/p-1/zones/z", "projects/{p}"),
            "p-1/zones/z"
        );
        assert_eq!(extract("abc", "x/{v}/"), "");
        assert_eq!(extract("x/abc", "x/{v}/"), "");
        // The first occurrence of each part.
        assert_eq!(extract("a/1/a/2/", "a/{v}/"), "1");
        assert_eq!(extract("anything", "no placeholder"), "");
    }

    #[test]
    fn the_guide_s_mapping_for_each_kind_of_arn() {
        // An assumed role (what a role's session presents): "assumed-role/" holds "role/".
        let m = map("arn:aws:sts::111122223333:assumed-role/partner-delivery/pipeline-7");
        assert_eq!(m.aws_role, "partner-delivery");
        assert_eq!(
            m.subject,
            "arn:aws:sts::111122223333:assumed-role/partner-delivery/pipeline-7"
        );
        // A role ARN itself has nothing after the name: the template does not match.
        assert_eq!(
            map("arn:aws:iam::111122223333:role/partner-delivery").aws_role,
            ""
        );
        // A role with a path: the first segment after "role/".
        assert_eq!(
            map("arn:aws:iam::111122223333:role/team/partner-delivery").aws_role,
            "team"
        );
        // A user: the ARN itself.
        let user = "arn:aws:iam::111122223333:user/alice";
        assert_eq!(map(user).aws_role, user);
        // A federated user has no "role/".
        let federated = "arn:aws:sts::111122223333:federated-user/bob";
        assert_eq!(map(federated).aws_role, federated);
    }

    #[test]
    fn the_condition_and_principal_set_name_the_role() {
        assert_eq!(
            condition("111122223333", "partner-delivery"),
            "assertion.arn.startsWith('arn:aws:sts::111122223333:assumed-role/partner-delivery/')"
        );
        assert_eq!(
            principal_set("123456789012", "aws-partner", "partner-delivery"),
            "principalSet://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/aws-partner/attribute.aws_role/partner-delivery"
        );
    }
}
