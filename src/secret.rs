//! Secrets in the config: a value given literally, with `${ENV}` references expanded, or
//! in a file named by the matching `*_file` key (MQTT and SMTP passwords, webhook keys and
//! secrets, the acknowledgement-link key, console password hashes); and URLs as they may be
//! shown in logs and errors, without their secrets.

use std::path::Path;

/// A URL as it may be shown: the password of `user:password@` and every query value
/// replaced by `***` (they hold secrets: passwords, webhook keys and tokens).
pub fn redact_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = match head.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, head),
    };
    let (auth, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let auth = match auth.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}:***@{host}")
        }
        None => auth.to_string(),
    };
    let mut out = match scheme {
        Some(s) => format!("{s}://{auth}{path}"),
        None => format!("{auth}{path}"),
    };
    if let Some(q) = query {
        let q: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) => format!("{k}=***"),
                None => kv.to_string(),
            })
            .collect();
        out = format!("{out}?{}", q.join("&"));
    }
    out
}

/// Expands `${VAR}` references in a config value.
pub fn expand_env(s: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out += &rest[..i];
        let tail = &rest[i + 2..];
        let j = tail
            .find('}')
            .ok_or_else(|| anyhow::anyhow!("unclosed ${{ in {s:?}"))?;
        let var = &tail[..j];
        let v = std::env::var(var)
            .map_err(|_| anyhow::anyhow!("environment variable {var} is not set"))?;
        out += &v;
        rest = &tail[j + 1..];
    }
    Ok(out + rest)
}

/// A secret given literally (with `${ENV}` references) or in a file (trailing newline cut).
pub fn secret(literal: Option<&str>, file: Option<&Path>) -> anyhow::Result<Option<String>> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("cannot read secret file {}: {e}", f.display()))?;
        return Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()));
    }
    literal.map(expand_env).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_wins_and_loses_its_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("yingji-secret-mod-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("key");
        std::fs::write(&f, "s3cret\r\n").unwrap();
        assert_eq!(
            secret(Some("literal"), Some(&f)).unwrap().as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            secret(Some("literal"), None).unwrap().as_deref(),
            Some("literal")
        );
        assert_eq!(secret(None, None).unwrap(), None);
        let missing = secret(None, Some(&dir.join("none"))).unwrap_err();
        assert!(
            missing.to_string().contains("cannot read secret file"),
            "{missing}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn env_references_are_expanded_or_refused() {
        std::env::set_var("YINGJI_TEST_SECRET_MOD", "v");
        assert_eq!(expand_env("a${YINGJI_TEST_SECRET_MOD}b").unwrap(), "avb");
        assert_eq!(expand_env("plain").unwrap(), "plain");
        assert!(expand_env("${YINGJI_TEST_NOT_SET_ANYWHERE}").is_err());
        assert!(expand_env("${UNCLOSED").is_err());
    }

    #[test]
    fn shown_urls_keep_no_password_and_no_query_value() {
        assert_eq!(
            redact_url("smtp://ops:PW@mail.example.org:587/x?key=K&flag"),
            "smtp://ops:***@mail.example.org:587/x?key=***&flag"
        );
        assert_eq!(redact_url("host:1883"), "host:1883");
    }
}
