//! What a WGSL artifact really declares, read with naga (the compiler wgpu uses).
//!
//! `check` compares this with the manifest: the entry points exist, their
//! storage and uniform bindings follow the op signature, the workgroup size
//! is the declared block, and optional capabilities (`f16`, subgroups) are
//! only used when the artifact lists the matching wgpu feature.

use std::ops::Range;

use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::{AddressSpace, Module, ScalarKind, StorageAccess, TypeInner};

/// A parsed and validated WGSL module.
pub struct WgslModule {
    module: Module,
    info: naga::valid::ModuleInfo,
}

/// A problem with the WGSL text, located in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WgslError {
    /// naga's message, with its notes.
    pub message: String,
    /// Byte range in the WGSL source.
    pub span: Option<Range<usize>>,
    /// naga's label at that span.
    pub label: Option<String>,
}

/// Optional capabilities a shader may need beyond baseline WebGPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WgslCapabilities {
    /// `enable f16;`
    pub f16: bool,
    /// Subgroup operations.
    pub subgroups: bool,
}

/// One entry point's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPoint {
    /// `@workgroup_size`.
    pub workgroup_size: [u32; 3],
    /// The resources it uses, sorted by group then binding.
    pub bindings: Vec<Binding>,
}

/// A resource an entry point uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// `@group(…)`.
    pub group: u32,
    /// `@binding(…)`.
    pub binding: u32,
    /// The variable's name.
    pub name: String,
    /// Where in the source it is declared.
    pub span: Option<Range<usize>>,
    /// Storage, uniform or something else.
    pub kind: BindingKind,
}

/// The kind of buffer a binding is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingKind {
    /// `var<storage, …>` of an array; `element` is its element type.
    Storage {
        /// `var<storage, read_write>`.
        writable: bool,
        /// The array element type, e.g. `f32` or `vec4<f32>`.
        element: Element,
    },
    /// `var<uniform>` of a struct; its members in order.
    Uniform {
        /// `(name, type)` of each member, e.g. `("eps", "f32")`.
        members: Vec<(String, Element)>,
    },
    /// A texture, sampler or other resource.
    Other,
}

/// A scalar or vector type, described by the parts that matter for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element {
    /// `f`, `i`, `u` or `b`.
    pub kind: char,
    /// Bits per component.
    pub bits: u32,
    /// Components: 1 for a scalar, 2 to 4 for a vector; 0 for anything else.
    pub lanes: u32,
}

impl std::fmt::Display for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scalar = match (self.kind, self.bits) {
            ('b', _) => "bool".to_string(),
            (kind, bits) => format!("{kind}{bits}"),
        };
        match self.lanes {
            0 => f.write_str("a composite type"),
            1 => f.write_str(&scalar),
            n => write!(f, "vec{n}<{scalar}>"),
        }
    }
}

impl WgslModule {
    /// Parses and validates `source` with every capability allowed, so a
    /// shader is judged for what it is; see [`Self::check_capabilities`].
    pub fn parse(source: &str) -> Result<Self, WgslError> {
        let module = naga::front::wgsl::parse_str(source).map_err(|e| {
            let (span, label) = e.labels().next().map_or((None, None), |(span, label)| {
                (span.to_range(), Some(label.to_string()))
            });
            let mut message = e.message().to_string();
            for note in e.notes() {
                message.push_str("; ");
                message.push_str(note);
            }
            WgslError {
                message,
                span,
                label,
            }
        })?;
        let info = validate(&module, Capabilities::all())?;
        Ok(Self { module, info })
    }

    /// Validates again with only the capabilities that `enabled` grants.
    pub fn check_capabilities(&self, enabled: WgslCapabilities) -> Result<(), WgslError> {
        let mut capabilities = Capabilities::default() | Capabilities::SHADER_FLOAT16_IN_FLOAT32;
        if enabled.f16 {
            capabilities |= Capabilities::SHADER_FLOAT16;
        }
        if enabled.subgroups {
            capabilities |= Capabilities::SUBGROUP | Capabilities::SUBGROUP_BARRIER;
        }
        validate(&self.module, capabilities).map(|_| ())
    }

    /// Whether any type in the module is built on `f16`.
    pub fn uses_f16(&self) -> bool {
        self.module.types.iter().any(|(_, ty)| match ty.inner {
            TypeInner::Scalar(s)
            | TypeInner::Vector { scalar: s, .. }
            | TypeInner::Matrix { scalar: s, .. } => s.kind == ScalarKind::Float && s.width == 2,
            _ => false,
        })
    }

    /// Names of every compute entry point.
    pub fn entry_point_names(&self) -> Vec<&str> {
        self.module
            .entry_points
            .iter()
            .filter(|e| e.stage == naga::ShaderStage::Compute)
            .map(|e| e.name.as_str())
            .collect()
    }

    /// The interface of compute entry point `name`.
    pub fn entry_point(&self, name: &str) -> Option<EntryPoint> {
        let (index, entry) = self
            .module
            .entry_points
            .iter()
            .enumerate()
            .find(|(_, e)| e.name == name && e.stage == naga::ShaderStage::Compute)?;
        let uses = self.info.get_entry_point(index);
        let mut bindings: Vec<Binding> = self
            .module
            .global_variables
            .iter()
            .filter(|(handle, _)| !uses[*handle].is_empty())
            .filter_map(|(handle, global)| {
                let binding = global.binding.as_ref()?;
                Some(Binding {
                    group: binding.group,
                    binding: binding.binding,
                    name: global.name.clone().unwrap_or_default(),
                    span: self.module.global_variables.get_span(handle).to_range(),
                    kind: self.binding_kind(global),
                })
            })
            .collect();
        bindings.sort_by_key(|b| (b.group, b.binding));
        Some(EntryPoint {
            workgroup_size: entry.workgroup_size,
            bindings,
        })
    }

    fn binding_kind(&self, global: &naga::GlobalVariable) -> BindingKind {
        let inner = &self.module.types[global.ty].inner;
        match global.space {
            AddressSpace::Storage { access } => {
                // `array<T>` directly, or a struct whose last member is one.
                let array = match inner {
                    TypeInner::Struct { members, .. } => {
                        members.last().map(|m| &self.module.types[m.ty].inner)
                    }
                    other => Some(other),
                };
                let element = match array {
                    Some(TypeInner::Array { base, .. }) => self.element(*base),
                    _ => Element {
                        kind: '?',
                        bits: 0,
                        lanes: 0,
                    },
                };
                BindingKind::Storage {
                    writable: access.contains(StorageAccess::STORE),
                    element,
                }
            }
            AddressSpace::Uniform => match inner {
                TypeInner::Struct { members, .. } => BindingKind::Uniform {
                    members: members
                        .iter()
                        .map(|m| (m.name.clone().unwrap_or_default(), self.element(m.ty)))
                        .collect(),
                },
                _ => BindingKind::Uniform {
                    members: vec![(String::new(), self.element(global.ty))],
                },
            },
            _ => BindingKind::Other,
        }
    }

    fn element(&self, ty: naga::Handle<naga::Type>) -> Element {
        let describe = |s: naga::Scalar, lanes: u32| Element {
            kind: match s.kind {
                ScalarKind::Float | ScalarKind::AbstractFloat => 'f',
                ScalarKind::Sint | ScalarKind::AbstractInt => 'i',
                ScalarKind::Uint => 'u',
                ScalarKind::Bool => 'b',
            },
            bits: u32::from(s.width) * 8,
            lanes,
        };
        match self.module.types[ty].inner {
            TypeInner::Scalar(s) | TypeInner::Atomic(s) => describe(s, 1),
            TypeInner::Vector { size, scalar } => describe(scalar, size as u32),
            _ => Element {
                kind: '?',
                bits: 0,
                lanes: 0,
            },
        }
    }
}

fn validate(
    module: &Module,
    capabilities: Capabilities,
) -> Result<naga::valid::ModuleInfo, WgslError> {
    Validator::new(ValidationFlags::all(), capabilities)
        .validate(module)
        .map_err(|e| {
            let (span, label) = e.spans().next().map_or((None, None), |(span, label)| {
                (span.to_range(), Some(label.clone()))
            });
            let mut message = e.as_inner().to_string();
            let mut source: Option<&dyn std::error::Error> =
                std::error::Error::source(e.as_inner());
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            WgslError {
                message,
                span,
                label,
            }
        })
}
