//! Where computation runs: `cpu`, `cuda:N` or `vulkan:N`.
//!
//! The model and the analytics may sit on different devices (the model on
//! one GPU, cuBLAS analytics on another), so the device is a small value type
//! parsed once from the command line and handed to whichever stage needs it.
//! Whether the device exists is checked against llama.cpp's device list when
//! a model is loaded (see [`crate::engine::ffi::Model::load`]).

use std::fmt;
use std::str::FromStr;

use super::error::DeviceError;

/// A compute device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    /// The CPU backend, always available.
    #[default]
    Cpu,
    /// The CUDA GPU with this index: from `libggml-cuda.so` loaded at run
    /// time (dynamic backends, the default build), or linked in with the
    /// `cuda` feature.
    Cuda(u32),
    /// The Vulkan device with this index, from a backend library loaded at
    /// run time (needs the `dynamic-backends` feature and
    /// `libggml-vulkan.so`, see `scripts/build-backend.sh`).
    Vulkan(u32),
}

impl Device {
    /// True when this build of ggviz can drive the device at all (CPU always,
    /// GPUs with dynamic backends or, CUDA, with the `cuda` feature).
    /// Existence is checked at load time.
    pub fn is_supported_by_build(self) -> bool {
        match self {
            Device::Cpu => true,
            Device::Cuda(_) => cfg!(any(feature = "cuda", feature = "dynamic-backends")),
            Device::Vulkan(_) => cfg!(feature = "dynamic-backends"),
        }
    }

    /// The name llama.cpp's ggml-cuda backend gives the device (`CUDA0`, ...).
    pub fn ggml_name(self) -> Option<String> {
        match self {
            Device::Cpu => None,
            Device::Cuda(n) => Some(format!("CUDA{n}")),
            Device::Vulkan(n) => Some(format!("Vulkan{n}")),
        }
    }

    /// Checks that this build can use the device (see
    /// [`Device::is_supported_by_build`]).
    pub fn check_supported(self) -> Result<Device, DeviceError> {
        match self {
            _ if self.is_supported_by_build() => Ok(self),
            Device::Vulkan(_) => Err(DeviceError::NeedsDynamicBackends(self.to_string())),
            _ => Err(DeviceError::CudaNotBuilt(self.to_string())),
        }
    }
}

/// Parses a device given on the command line and checks that this build can
/// drive it: the value parser for `--device` (and `--analytics-device`).
pub fn parse_supported(s: &str) -> Result<Device, DeviceError> {
    s.parse::<Device>()?.check_supported()
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Vulkan(n) => write!(f, "vulkan:{n}"),
        }
    }
}

impl FromStr for Device {
    type Err = DeviceError;

    /// Parses `cpu`, `cuda` (= `cuda:0`), `cuda:N`, `vulkan` (= `vulkan:0`)
    /// or `vulkan:N`, case-insensitively.
    fn from_str(s: &str) -> Result<Device, DeviceError> {
        let lower = s.trim().to_ascii_lowercase();
        let index = |prefix: &str| {
            lower
                .strip_prefix(prefix)
                .and_then(|n| n.parse::<u32>().ok())
        };
        match lower.as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            "vulkan" => Ok(Device::Vulkan(0)),
            _ => index("cuda:")
                .map(Device::Cuda)
                .or_else(|| index("vulkan:").map(Device::Vulkan))
                .ok_or_else(|| DeviceError::Syntax(s.to_string())),
        }
    }
}

impl serde::Serialize for Device {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Device {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Device, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_cuda_devices() {
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("CPU".parse(), Ok(Device::Cpu));
        assert_eq!("cuda".parse(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:1".parse(), Ok(Device::Cuda(1)));
        for bad in ["gpu", "cuda:", "cuda:-1", "cuda:x", "metal:0", ""] {
            assert_eq!(
                bad.parse::<Device>(),
                Err(DeviceError::Syntax(bad.to_string())),
                "{bad}"
            );
        }
        assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
        assert_eq!(Device::Cuda(3).ggml_name().as_deref(), Some("CUDA3"));
        assert_eq!("Vulkan".parse(), Ok(Device::Vulkan(0)));
        assert_eq!("vulkan:2".parse(), Ok(Device::Vulkan(2)));
        assert_eq!(Device::Vulkan(2).to_string(), "vulkan:2");
        assert_eq!(Device::Vulkan(2).ggml_name().as_deref(), Some("Vulkan2"));
        assert!("vulkan:".parse::<Device>().is_err());
    }

    #[test]
    fn cuda_needs_the_cuda_feature() {
        assert_eq!(Device::Cpu.check_supported(), Ok(Device::Cpu));
        assert_eq!(parse_supported("cpu"), Ok(Device::Cpu));
        assert!(parse_supported("tpu").is_err());
        let cuda = Device::Cuda(0).check_supported();
        if cfg!(any(feature = "cuda", feature = "dynamic-backends")) {
            assert_eq!(cuda, Ok(Device::Cuda(0)));
        } else {
            assert_eq!(cuda, Err(DeviceError::CudaNotBuilt("cuda:0".into())));
        }
        let vulkan = Device::Vulkan(0).check_supported();
        if cfg!(feature = "dynamic-backends") {
            assert_eq!(vulkan, Ok(Device::Vulkan(0)));
        } else {
            assert_eq!(
                vulkan,
                Err(DeviceError::NeedsDynamicBackends("vulkan:0".into()))
            );
        }
    }
}
