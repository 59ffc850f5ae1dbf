//! `HostConfig`: one kind of machine in the catalogue (spec §3).

use serde::{Deserialize, Deserializer, Serialize};

use crate::go_json::nil_slice;

/// The Go version hosts bootstrap with unless they say otherwise.
pub const DEFAULT_GO_BOOTSTRAP: &str = "go1.24.6";

/// Where buildlet and bootstrap binaries are published (upstream's `buildenv.Environment`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildEnv {
    /// Cloud Storage bucket of buildlet binaries and old bootstrap toolchains.
    pub buildlet_bucket: String,
    /// GCP project whose registry holds container images.
    pub project_name: String,
}

impl BuildEnv {
    /// Upstream's production environment.
    pub fn production() -> BuildEnv {
        BuildEnv {
            buildlet_bucket: "go-builder-data".into(),
            project_name: "symbolic-datum-552".into(),
        }
    }
}

/// Which pool runs a host's machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// AWS EC2 VMs.
    Ec2,
    /// GCE VMs or containers.
    Gce,
    /// Machines that dial in to the coordinator.
    Reverse,
}

/// A person responsible for a host (upstream's `gophers.Person`, exported fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Full name.
    #[serde(rename = "Name", default)]
    pub name: String,
    /// GitHub user name.
    #[serde(rename = "GitHub", default)]
    pub github: String,
    /// Gerrit account email.
    #[serde(rename = "Gerrit", default)]
    pub gerrit: String,
    /// Known email addresses.
    #[serde(rename = "Emails", default, with = "nil_slice")]
    pub emails: Vec<String>,
    /// Works at Google.
    #[serde(rename = "Googler", default)]
    pub googler: bool,
    /// Is a bot.
    #[serde(rename = "Bot", default)]
    pub bot: bool,
}

/// A kind of build machine. Field names are upstream's: exported fields serialize exactly
/// as `farmer.golang.org/builders?mode=json` does; upstream's unexported fields
/// (`machineType`, `cosArchitecture`, `env`) can be set in a catalogue file but are not
/// written to JSON, like Go's encoder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Unique name; equals its catalogue key (filled from the key when empty).
    #[serde(rename = "HostType", default)]
    pub host_type: String,
    /// `GOOS-GOARCH[-GOARM]` used to pick binaries; derived from the name when empty.
    #[serde(rename = "HostArch", default)]
    pub host_arch: String,
    /// Bootstrap Go version; `none` means the machine brings its own.
    #[serde(rename = "GoBootstrap", default)]
    pub go_bootstrap: String,
    /// GCE image (or an AMI on EC2).
    #[serde(rename = "VMImage", default)]
    pub vm_image: String,
    /// Container image relative to the project's registry.
    #[serde(rename = "ContainerImage", default)]
    pub container_image: String,
    /// Machines dial in (reverse pool only).
    #[serde(rename = "IsReverse", default)]
    pub is_reverse: bool,
    /// GCE machine type or class, or an EC2 instance type.
    #[serde(rename = "machineType", default, skip_serializing)]
    pub machine_type: String,
    /// Spinning disk instead of SSD.
    #[serde(rename = "RegularDisk", default)]
    pub regular_disk: bool,
    /// GCE minimum CPU platform.
    #[serde(rename = "MinCPUPlatform", default)]
    pub min_cpu_platform: String,
    /// COS image family; empty means `cos-101-lts`.
    #[serde(rename = "cosArchitecture", default, skip_serializing)]
    pub cos_architecture: String,
    /// Runs on AWS EC2.
    #[serde(rename = "IsEC2", default)]
    pub is_ec2: bool,
    /// Force-delete timeout in nanoseconds (0 = pool default). A catalogue file may also
    /// write it as a string such as `"12h"`, `"90m"` or `"30s"`.
    #[serde(
        rename = "CustomDeleteTimeout",
        default,
        deserialize_with = "duration_ns"
    )]
    pub custom_delete_timeout: i64,
    /// Expected number of connected reverse machines.
    #[serde(rename = "ExpectNum", default)]
    pub expect_num: i64,
    /// Reverse machine gets a fresh environment per connection.
    #[serde(rename = "HermeticReverse", default)]
    pub hermetic_reverse: bool,
    /// Reverse machine operated by Google; only valid on reverse hosts.
    #[serde(rename = "GoogleReverse", default)]
    pub google_reverse: bool,
    /// Container needs nested virtualization.
    #[serde(rename = "NestedVirt", default)]
    pub nested_virt: bool,
    /// VM image with konlet to run the container on.
    #[serde(rename = "KonletVMImage", default)]
    pub konlet_vm_image: String,
    /// Base `KEY=value` environment.
    #[serde(rename = "env", default, skip_serializing)]
    pub env: Vec<String>,
    /// People responsible; empty means golang-dev (written as `null`).
    #[serde(rename = "Owners", default, with = "nil_slice")]
    pub owners: Vec<Person>,
    /// Free text.
    #[serde(rename = "Notes", default)]
    pub notes: String,
    /// User for SSH access; empty = unsupported.
    #[serde(rename = "SSHUsername", default)]
    pub ssh_username: String,
    /// Root disk size in GiB (0 = default).
    #[serde(rename = "RootDriveSizeGB", default)]
    pub root_drive_size_gb: i64,
}

/// Reads nanoseconds as an integer, or a duration string with an `h`, `m`, `s` or `ms` unit.
fn duration_ns<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Ns(i64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Ns(n) => Ok(n),
        Raw::Text(s) => parse_duration(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "bad duration {s:?}: want nanoseconds or a number with h, m, s or ms"
            ))
        }),
    }
}

fn parse_duration(s: &str) -> Option<i64> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().ok()?;
    let scale: i64 = match unit {
        "h" => 3_600_000_000_000,
        "m" => 60_000_000_000,
        "s" => 1_000_000_000,
        "ms" => 1_000_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

impl HostConfig {
    /// A container host (a VM that only launches a container counts as one).
    pub fn is_container(&self) -> bool {
        !self.container_image.is_empty()
    }

    /// A plain VM host (on EC2: an image and no container).
    pub fn is_vm(&self) -> bool {
        if self.is_ec2 {
            !self.vm_image.is_empty() && self.container_image.is_empty()
        } else {
            !self.vm_image.is_empty()
        }
    }

    /// How many of the three kinds (VM image, non-EC2 container image, reverse) the entry
    /// sets; a valid host sets exactly one.
    pub(crate) fn kinds_set(&self) -> usize {
        usize::from(!self.vm_image.is_empty())
            + usize::from(!self.container_image.is_empty() && !self.is_ec2)
            + usize::from(self.is_reverse)
    }

    /// The pool that runs this host (order matters: EC2, then GCE, then reverse).
    pub fn pool_kind(&self) -> Option<PoolKind> {
        if self.is_ec2 {
            Some(PoolKind::Ec2)
        } else if self.is_vm() || self.is_container() {
            Some(PoolKind::Gce)
        } else if self.is_reverse {
            Some(PoolKind::Reverse)
        } else {
            None
        }
    }

    /// Upstream's `PoolName()` for the farmer builders page.
    pub fn pool_name(&self) -> &'static str {
        if self.is_reverse {
            "Reverse (dedicated machine/VM)"
        } else if self.is_ec2 {
            "EC2 VM Container"
        } else if self.is_vm() {
            "GCE VM"
        } else {
            "Container"
        }
    }

    /// Machines get a fresh environment for every build.
    pub fn is_hermetic(&self) -> bool {
        if self.is_reverse {
            self.hermetic_reverse
        } else {
            true
        }
    }

    /// Machines are run by Google.
    pub fn is_google(&self) -> bool {
        self.is_container() || self.is_vm() || (self.is_reverse && self.google_reverse)
    }

    /// Upstream's `MachineType()`.
    pub fn machine_type(&self) -> String {
        if self.is_ec2 {
            return self.machine_type.clone();
        }
        let typ = match self.machine_type.as_str() {
            "" if self.nested_virt || !self.min_cpu_platform.is_empty() => "n2",
            "" => "e2",
            t => t,
        };
        if typ.contains('-') {
            typ.to_owned()
        } else if self.is_container() {
            format!("{typ}-standard-16")
        } else {
            format!("{typ}-standard-8")
        }
    }

    /// COS image family for container hosts.
    pub fn cos_architecture(&self) -> &str {
        if self.cos_architecture.is_empty() {
            "cos-101-lts"
        } else {
            &self.cos_architecture
        }
    }

    /// Upstream's `ContainerVMImage()`: the VM image to run the container on, `""` = any.
    pub fn container_vm_image(&self, env: &BuildEnv) -> String {
        if !self.konlet_vm_image.is_empty() {
            self.konlet_vm_image.clone()
        } else if self.nested_virt {
            "debian-bullseye-vmx".into()
        } else if self.is_ec2 && self.is_container() {
            format!("gcr.io/{}/{}", env.project_name, self.container_image)
        } else {
            String::new()
        }
    }

    /// Where this host's buildlet binary is published.
    pub fn buildlet_binary_url(&self, env: &BuildEnv) -> String {
        format!(
            "https://storage.googleapis.com/{}/buildlet.{}",
            env.buildlet_bucket, self.host_arch
        )
    }

    /// The base environment (upstream's unexported `env`).
    pub fn env(&self) -> &[String] {
        &self.env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_catalogue_units() {
        assert_eq!(parse_duration("12h"), Some(12 * 3_600_000_000_000));
        assert_eq!(parse_duration("90m"), Some(90 * 60_000_000_000));
        assert_eq!(parse_duration("5ms"), Some(5_000_000));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("99999999999999h"), None);
    }
}
