//! Container image references, parsed once: `verify` checks them with it, the graph reads
//! from it whether an image is a plain `prefecthq/prefect` one.

/// `[registry[:port]/]repository[:tag][@digest]`, as Docker parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The registry host (`123456789012.dkr.ecr.us-east-1.amazonaws.com`, `localhost:5000`);
    /// `None` for Docker Hub's short form.
    pub registry: Option<String>,
    /// The path below the registry: `prefecthq/prefect`, `flows/worker`, `ubuntu`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ImageRef {
    pub fn parse(image: &str) -> Result<ImageRef, String> {
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (image, None),
        };
        if let Some(d) = digest {
            let ok = d.split_once(':').is_some_and(|(alg, hex)| {
                !alg.is_empty() && hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
            });
            if !ok {
                return Err(format!("digest \"{d}\" is not algorithm:hex"));
            }
        }
        let (path, tag) = match rest.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') => (p, Some(t)),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(format!("tag \"{t}\" is not a valid image tag"));
            }
        }
        let mut parts: Vec<&str> = path.split('/').collect();
        // A first part with a dot, a colon or "localhost" is a registry host.
        let registry = (parts.len() > 1
            && (parts[0].contains(['.', ':']) || parts[0] == "localhost"))
            .then(|| parts.remove(0).to_owned());
        for p in &parts {
            let ok = !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && p.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
            if !ok {
                return Err(format!(
                    "\"{p}\" in \"{image}\" is not a valid repository name (lower-case letters, digits, . _ -)"
                ));
            }
        }
        Ok(ImageRef {
            registry,
            repository: parts.join("/"),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// Prefect's own image on Docker Hub, `prefecthq/prefect`, which ships without prefect-aws.
    pub fn is_plain_prefect(&self) -> bool {
        self.on_docker_hub() && self.repository == "prefecthq/prefect"
    }

    /// The Prefect version a `prefecthq/prefect` tag names, as far as the tag says:
    /// `3-latest` → (3, None), `3.1.4-python3.12` → (3, Some(1)), `2.20-python3.11` →
    /// (2, Some(20)); `None` for another image, no tag, `latest` or a tag without a version.
    pub fn prefect_version(&self) -> Option<(u32, Option<u32>)> {
        if !self.is_plain_prefect() {
            return None;
        }
        let version = self.tag.as_deref()?.split('-').next()?;
        let mut parts = version.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = match parts.next() {
            Some(m) => Some(m.parse().ok()?),
            None => None,
        };
        Some((major, minor))
    }

    /// On Docker Hub: no registry, or Docker Hub's own host names.
    pub fn on_docker_hub(&self) -> bool {
        matches!(
            self.registry.as_deref(),
            None | Some("docker.io" | "index.docker.io" | "registry-1.docker.io")
        )
    }

    /// The region of the private ECR registry the image is in
    /// (`<account>.dkr.ecr.<region>.amazonaws.com[.cn]`); `None` for any other registry.
    pub fn ecr_region(&self) -> Option<&str> {
        let host = self.registry.as_deref()?;
        let rest = host
            .strip_suffix(".amazonaws.com")
            .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
        let (account, region) = rest.split_once(".dkr.ecr.")?;
        (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && !region.is_empty())
            .then_some(region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefect_tags_name_their_version() {
        let v = |image: &str| ImageRef::parse(image).unwrap().prefect_version();
        assert_eq!(v("prefecthq/prefect:3-latest"), Some((3, None)));
        assert_eq!(v("prefecthq/prefect:3-python3.12"), Some((3, None)));
        assert_eq!(v("prefecthq/prefect:3.1.4-python3.12"), Some((3, Some(1))));
        assert_eq!(v("docker.io/prefecthq/prefect:3.8.0"), Some((3, Some(8))));
        assert_eq!(v("prefecthq/prefect:2.20-python3.11"), Some((2, Some(20))));
        assert_eq!(v("prefecthq/prefect:2"), Some((2, None)));
        for unknown in [
            "prefecthq/prefect",
            "prefecthq/prefect:latest",
            "prefecthq/prefect:sha-1a2b3c",
            "ghcr.io/prefecthq/prefect:3.1.0",
            "acme/prefect:2-latest",
        ] {
            assert_eq!(v(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn an_ecr_image_names_its_region() {
        let r = |i: &str| ImageRef::parse(i).unwrap().ecr_region().map(str::to_owned);
        assert_eq!(
            r("123456789012.dkr.ecr.eu-west-1.amazonaws.com/flows:1").as_deref(),
            Some("eu-west-1")
        );
        for other in [
            "public.ecr.aws/prefecthq/prefect:3-latest",
            "prefecthq/prefect:3-latest",
            "1234.dkr.ecr.us-east-1.amazonaws.com/x",
            "ghcr.io/acme/flows",
        ] {
            assert_eq!(r(other), None, "{other}");
        }
    }

    #[test]
    fn references_parse_into_their_parts() {
        let r = ImageRef::parse("docker.io/prefecthq/prefect:3-latest").unwrap();
        assert!(r.on_docker_hub());
        assert_eq!(r.repository, "prefecthq/prefect");
        assert_eq!(r.tag.as_deref(), Some("3-latest"));
        let r = ImageRef::parse("localhost:5000/worker").unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost:5000"));
        assert!(!r.on_docker_hub());
        assert_eq!((r.repository.as_str(), r.tag), ("worker", None));
    }
}
