//! f32 convolution on the CPU through oneDNN, PyTorch's own CPU convolution
//! library, loaded at run time from `libdnnl.so.2` (Debian/Ubuntu package
//! `libdnnl2`, oneDNN 2.x). Loading at run time keeps oneDNN out of the
//! build: without it the GEMM lowering of `conv.rs` runs instead. Written
//! by hand because no maintained crate binds oneDNN's C API; only the dozen
//! functions a convolution needs are declared.
//!
//! Each [`Pass`] of a [`Geometry`] becomes a [`Plan`], built once and cached:
//! the oneDNN primitive (forward, backward data, backward weights; the
//! backward ones hinted by the forward primitive, as oneDNN requires), with
//! every tensor's layout left to oneDNN (`format_tag::any`, typically a
//! channel-blocked `nChw16c`; pointwise convolutions keep plain
//! activations), or channels-last activations where oneDNN's own choice
//! would be its slow GEMM fallback. Our tensors are contiguous NC(T)HW, so a call reorders its
//! inputs into the chosen layouts, runs the primitive and reorders the
//! result back, as PyTorch does for NCHW tensors. Each call runs on the
//! calling thread with this thread's pooled buffers and scratchpad; plans
//! are shared by all threads.
//!
//! Shapes: `x (N, C, [T,] H, W)`, `w (O, C/g, [kt,] kh, kw)` (oneDNN sees
//! `(g, O/g, C/g, ...)` when grouped), `y (N, O, [To,] Ho, Wo)`; oneDNN's
//! dilation counts the gaps (ours minus one), padding is symmetric.
//!
//! The C structs `dnnl_memory_desc_t` and `dnnl_convolution_desc_t` are
//! only ever passed by pointer, so they are held here as opaque, 8-aligned
//! buffers larger than oneDNN 2.6's (696 and 5,976 bytes); the enum values
//! are those of oneDNN 2.x's `dnnl_types.h`, checked against the loaded
//! library's major version.

use crate::conv_geometry::{Geometry, Pass};
use libloading::Library;
use std::collections::HashMap;
use std::ffi::{c_int, c_uint, c_void};
use std::sync::{Arc, Mutex, OnceLock};

type Status = c_int;
type Handle = *mut c_void;
type Dims = [i64; 12];

/// `dnnl_memory_desc_t`, opaque.
#[repr(C, align(8))]
struct MemoryDesc([u8; 1024]);

/// `dnnl_convolution_desc_t`, opaque.
#[repr(C, align(8))]
struct ConvDesc([u8; 8192]);

/// `dnnl_exec_arg_t`.
#[repr(C)]
struct ExecArg {
    arg: c_int,
    memory: Handle,
}

/// `dnnl_version_t`.
#[repr(C)]
struct Version {
    major: c_int,
    minor: c_int,
    patch: c_int,
}

// oneDNN 2.x enum values (dnnl_types.h).
const F32: c_int = 3;
const FORMAT_ANY: c_int = 1;
const PLAIN_TAGS: [c_int; 7] = [0, 2, 3, 4, 5, 7, 8]; // a, ab, abc, abcd, abcde, abcdef by rank
const CHANNELS_LAST_TAGS: [c_int; 6] = [0, 0, 0, 17, 20, 21]; // acb, acdb, acdeb by rank
const FORWARD_TRAINING: c_int = 64;
const CONVOLUTION_DIRECT: c_int = 1;
const ENGINE_CPU: c_int = 1;
const STREAM_DEFAULT: c_uint = 1;
const SCRATCHPAD_USER: c_int = 1;
const ARG_SRC: c_int = 1;
const ARG_DST: c_int = 17;
const ARG_WEIGHTS: c_int = 33;
const ARG_SCRATCHPAD: c_int = 80;
const ARG_DIFF_SRC: c_int = 129;
const ARG_DIFF_DST: c_int = 145;
const ARG_DIFF_WEIGHTS: c_int = 161;
const QUERY_SCRATCHPAD_MD: c_int = 136;
const QUERY_IMPL_INFO_STR: c_int = 8;

/// The query that returns the memory descriptor of execution argument `arg`.
fn query_for(arg: c_int) -> c_int {
    match arg {
        ARG_SRC => 129,
        ARG_DIFF_SRC => 130,
        ARG_WEIGHTS => 131,
        ARG_DIFF_WEIGHTS => 132,
        ARG_DST => 133,
        _ => 134, // ARG_DIFF_DST
    }
}

type ConvFwdInit = unsafe extern "C" fn(
    *mut ConvDesc,
    c_int,
    c_int,
    *const MemoryDesc,
    *const MemoryDesc,
    *const MemoryDesc,
    *const MemoryDesc,
    *const i64,
    *const i64,
    *const i64,
    *const i64,
) -> Status;
type ConvBwdDataInit = unsafe extern "C" fn(
    *mut ConvDesc,
    c_int,
    *const MemoryDesc,
    *const MemoryDesc,
    *const MemoryDesc,
    *const i64,
    *const i64,
    *const i64,
    *const i64,
) -> Status;
type ConvBwdWeightsInit = unsafe extern "C" fn(
    *mut ConvDesc,
    c_int,
    *const MemoryDesc,
    *const MemoryDesc,
    *const MemoryDesc,
    *const MemoryDesc,
    *const i64,
    *const i64,
    *const i64,
    *const i64,
) -> Status;

/// The loaded library and the functions used from it.
struct Api {
    _lib: Library,
    engine: Handle,
    version: unsafe extern "C" fn() -> *const Version,
    engine_create: unsafe extern "C" fn(*mut Handle, c_int, usize) -> Status,
    stream_create: unsafe extern "C" fn(*mut Handle, Handle, c_uint) -> Status,
    stream_destroy: unsafe extern "C" fn(Handle) -> Status,
    stream_wait: unsafe extern "C" fn(Handle) -> Status,
    memory_desc_init_by_tag:
        unsafe extern "C" fn(*mut MemoryDesc, c_int, *const i64, c_int, c_int) -> Status,
    memory_desc_equal: unsafe extern "C" fn(*const MemoryDesc, *const MemoryDesc) -> c_int,
    memory_desc_get_size: unsafe extern "C" fn(*const MemoryDesc) -> usize,
    memory_create: unsafe extern "C" fn(*mut Handle, *const MemoryDesc, Handle, Handle) -> Status,
    memory_destroy: unsafe extern "C" fn(Handle) -> Status,
    memory_set_data_handle: unsafe extern "C" fn(Handle, *mut c_void, Handle) -> Status,
    conv_fwd_init: ConvFwdInit,
    conv_bwd_data_init: ConvBwdDataInit,
    conv_bwd_weights_init: ConvBwdWeightsInit,
    primitive_desc_create:
        unsafe extern "C" fn(*mut Handle, *const c_void, Handle, Handle, Handle) -> Status,
    primitive_desc_query_md: unsafe extern "C" fn(Handle, c_int, c_int) -> *const MemoryDesc,
    primitive_desc_query: unsafe extern "C" fn(Handle, c_int, c_int, *mut c_void) -> Status,
    primitive_desc_destroy: unsafe extern "C" fn(Handle) -> Status,
    primitive_create: unsafe extern "C" fn(*mut Handle, Handle) -> Status,
    primitive_execute: unsafe extern "C" fn(Handle, Handle, c_int, *const ExecArg) -> Status,
    primitive_destroy: unsafe extern "C" fn(Handle) -> Status,
    reorder_pd_create: unsafe extern "C" fn(
        *mut Handle,
        *const MemoryDesc,
        Handle,
        *const MemoryDesc,
        Handle,
        Handle,
    ) -> Status,
    attr_create: unsafe extern "C" fn(*mut Handle) -> Status,
    attr_set_scratchpad_mode: unsafe extern "C" fn(Handle, c_int) -> Status,
    attr_destroy: unsafe extern "C" fn(Handle) -> Status,
    /// OpenMP's thread-count control (libgomp, which Debian's oneDNN
    /// uses), and its default thread count; absent for other runtimes.
    omp_set_num_threads: Option<unsafe extern "C" fn(c_int)>,
    max_threads: c_int,
}

// SAFETY: the engine handle is only used to create primitives and memory
// objects, which oneDNN allows from any thread; the rest are function
// pointers into a library that stays loaded for the life of the process.
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

fn check(status: Status, what: &str) -> candle_core::Result<()> {
    if status == 0 {
        Ok(())
    } else {
        candle_core::bail!("oneDNN: {what} failed with status {status}")
    }
}

impl Api {
    fn load() -> Result<Self, String> {
        // libgomp is loaded with oneDNN, unless the program links it already
        // (FFmpeg does; `quiet_thread_pools` handles that), and reads this then.
        crate::threads::default_wait_policy();
        // SAFETY: loading oneDNN runs its (side-effect free) initialisers.
        let lib = unsafe { Library::new("libdnnl.so.2") }.map_err(|e| e.to_string())?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the declared type is the oneDNN 2.x prototype of
                // the symbol (dnnl.h); the pointer outlives no library
                // (`_lib` is stored alongside).
                *unsafe { lib.get($name) }.map_err(|e: libloading::Error| e.to_string())?
            };
        }
        let mut api = Api {
            engine: std::ptr::null_mut(),
            version: sym!(b"dnnl_version"),
            engine_create: sym!(b"dnnl_engine_create"),
            stream_create: sym!(b"dnnl_stream_create"),
            stream_destroy: sym!(b"dnnl_stream_destroy"),
            stream_wait: sym!(b"dnnl_stream_wait"),
            memory_desc_init_by_tag: sym!(b"dnnl_memory_desc_init_by_tag"),
            memory_desc_equal: sym!(b"dnnl_memory_desc_equal"),
            memory_desc_get_size: sym!(b"dnnl_memory_desc_get_size"),
            memory_create: sym!(b"dnnl_memory_create"),
            memory_destroy: sym!(b"dnnl_memory_destroy"),
            memory_set_data_handle: sym!(b"dnnl_memory_set_data_handle_v2"),
            conv_fwd_init: sym!(b"dnnl_dilated_convolution_forward_desc_init"),
            conv_bwd_data_init: sym!(b"dnnl_dilated_convolution_backward_data_desc_init"),
            conv_bwd_weights_init: sym!(b"dnnl_dilated_convolution_backward_weights_desc_init"),
            primitive_desc_create: sym!(b"dnnl_primitive_desc_create"),
            primitive_desc_query_md: sym!(b"dnnl_primitive_desc_query_md"),
            primitive_desc_query: sym!(b"dnnl_primitive_desc_query"),
            primitive_desc_destroy: sym!(b"dnnl_primitive_desc_destroy"),
            primitive_create: sym!(b"dnnl_primitive_create"),
            primitive_execute: sym!(b"dnnl_primitive_execute"),
            primitive_destroy: sym!(b"dnnl_primitive_destroy"),
            reorder_pd_create: sym!(b"dnnl_reorder_primitive_desc_create"),
            attr_create: sym!(b"dnnl_primitive_attr_create"),
            attr_set_scratchpad_mode: sym!(b"dnnl_primitive_attr_set_scratchpad_mode"),
            attr_destroy: sym!(b"dnnl_primitive_attr_destroy"),
            // SAFETY: OpenMP's prototypes; dlsym on oneDNN's handle also
            // searches the libraries it links (libgomp).
            omp_set_num_threads: unsafe { lib.get(b"omp_set_num_threads") }.ok().map(|f| *f),
            max_threads: unsafe {
                lib.get::<unsafe extern "C" fn() -> c_int>(b"omp_get_max_threads")
            }
            .ok()
            // SAFETY: omp_get_max_threads takes no arguments.
            .map_or(1, |f| unsafe { f() }),
            _lib: lib,
        };
        // SAFETY: dnnl_version returns a pointer to a static struct.
        let major = unsafe { (*(api.version)()).major };
        if major != 2 {
            return Err(format!(
                "libdnnl.so.2 reports version {major}, 2.x expected"
            ));
        }
        // SAFETY: engine_create writes one handle.
        let status = unsafe { (api.engine_create)(&mut api.engine, ENGINE_CPU, 0) };
        if status != 0 {
            return Err(format!(
                "creating the CPU engine failed with status {status}"
            ));
        }
        Ok(api)
    }

    fn md(&self, dims: &[usize], tag: c_int) -> candle_core::Result<Box<MemoryDesc>> {
        let mut md = Box::new(MemoryDesc([0; 1024]));
        let mut d: Dims = [0; 12];
        for (a, &v) in d.iter_mut().zip(dims) {
            *a = v as i64;
        }
        // SAFETY: `md` is larger than dnnl_memory_desc_t; `d` holds 12 dims.
        check(
            unsafe {
                (self.memory_desc_init_by_tag)(&mut *md, dims.len() as c_int, d.as_ptr(), F32, tag)
            },
            "memory_desc_init_by_tag",
        )?;
        Ok(md)
    }

    /// Creates a primitive descriptor from an op descriptor, or a reorder.
    fn primitive(&self, pd: Handle) -> candle_core::Result<Prim<'_>> {
        let mut prim = std::ptr::null_mut();
        // SAFETY: `pd` is a valid primitive descriptor; on failure it is
        // destroyed here, on success it is owned by the returned Prim.
        let status = unsafe { (self.primitive_create)(&mut prim, pd) };
        if status != 0 {
            unsafe { (self.primitive_desc_destroy)(pd) };
            check(status, "primitive_create")?;
        }
        Ok(Prim {
            api: self,
            pd,
            prim,
        })
    }
}

/// A primitive and its descriptor, destroyed together.
struct Prim<'a> {
    api: &'a Api,
    pd: Handle,
    prim: Handle,
}

impl Prim<'_> {
    /// oneDNN's name of the implementation, e.g. `jit:avx512_core` or
    /// `x64:gemm:jit`.
    fn implementation(&self) -> String {
        let mut name: *const std::ffi::c_char = std::ptr::null();
        // SAFETY: the impl_info_str query writes one pointer to a string
        // owned by the descriptor, read here while the descriptor lives.
        let status = unsafe {
            (self.api.primitive_desc_query)(
                self.pd,
                QUERY_IMPL_INFO_STR,
                0,
                (&mut name as *mut *const std::ffi::c_char).cast(),
            )
        };
        if status != 0 || name.is_null() {
            return String::new();
        }
        // SAFETY: a NUL-terminated string owned by the descriptor.
        unsafe { std::ffi::CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Prim<'_> {
    fn drop(&mut self) {
        // SAFETY: both handles were created by this API and are dropped once.
        unsafe {
            (self.api.primitive_destroy)(self.prim);
            (self.api.primitive_desc_destroy)(self.pd);
        }
    }
}

/// One tensor of a plan: our plain layout, oneDNN's, and the reorder
/// between them when they differ.
struct Port<'a> {
    arg: c_int,
    plain: Box<MemoryDesc>,
    plain_len: usize,
    /// Owned by the plan's primitive descriptor.
    inner: *const MemoryDesc,
    inner_len: usize,
    reorder: Option<Prim<'a>>,
}

/// A cached convolution pass: the primitive and its tensors.
pub(crate) struct Plan {
    main: Prim<'static>,
    inputs: [Port<'static>; 2],
    output: Port<'static>,
    /// Owned by the primitive descriptor; null when none is needed.
    scratchpad: *const MemoryDesc,
    scratchpad_len: usize,
}

// SAFETY: a plan is immutable once built; oneDNN primitives may be executed
// from several threads at once, and each call brings its own scratchpad.
unsafe impl Send for Plan {}
unsafe impl Sync for Plan {}

/// The loaded library, or why it could not be loaded.
fn api() -> Result<&'static Api, &'static str> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(Api::load).as_ref().map_err(String::as_str)
}

/// Whether oneDNN could be loaded; the reason when not.
pub(crate) fn available() -> Result<(), String> {
    api()
        .map(|_| ())
        .map_err(|e| format!("libdnnl.so.2 (oneDNN 2.x) is not usable: {e}"))
}

/// The tensor dims oneDNN sees: `(N, C, [T,] H, W)` and the kernel with a
/// leading group axis when grouped.
fn dims(g: &Geometry) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let spatial = |v: [usize; 3]| if g.is_2d { v[1..].to_vec() } else { v.to_vec() };
    let x = [vec![g.n, g.c], spatial(g.input)].concat();
    let y = [vec![g.n, g.o], spatial(g.output)].concat();
    let k = spatial(g.kernel);
    let w = if g.groups > 1 {
        [vec![g.groups, g.o / g.groups, g.c / g.groups], k].concat()
    } else {
        [vec![g.o, g.c], k].concat()
    };
    (x, w, y)
}

/// Whether oneDNN's implementation name is its GEMM-based convolution
/// (`x64:gemm:jit`), not one of its direct `brgemm` kernels.
fn is_gemm_fallback(name: &str) -> bool {
    name.split(':').any(|part| part == "gemm")
}

/// Whether the implementation is a direct kernel: neither the GEMM
/// fallback nor the reference loops (`ref:any`).
fn is_direct(name: &str) -> bool {
    !name.is_empty() && !is_gemm_fallback(name) && !name.starts_with("ref")
}

/// The activation layouts a pass's primitive is asked for.
#[derive(Clone, Copy, PartialEq)]
enum Activations {
    /// oneDNN's choice, except that pointwise convolutions keep our plain
    /// layout: oneDNN then runs them as GEMMs with no reorder
    /// (forward+backward 1.45x faster than through blocked layouts for 1x1
    /// 256->64 on 2x256x32x32).
    Chosen,
    /// `N(T)HWC`, tried where oneDNN's choice is its GEMM fallback (see
    /// [`Plan::build`]).
    ChannelsLast,
}

/// The primitive of `pass` for geometry `g` with the given activation
/// layouts (the weights' is oneDNN's choice), hinted by the forward plan.
fn conv_primitive(
    api: &'static Api,
    g: &Geometry,
    pass: Pass,
    hint: Option<&Plan>,
    activations: Activations,
) -> candle_core::Result<Prim<'static>> {
    let (xd, wd, yd) = dims(g);
    let any = |d: &[usize]| api.md(d, FORMAT_ANY);
    let act = |d: &[usize]| match activations {
        Activations::ChannelsLast => api.md(d, CHANNELS_LAST_TAGS[d.len()]),
        Activations::Chosen if g.is_pointwise() => api.md(d, PLAIN_TAGS[d.len()]),
        Activations::Chosen => any(d),
    };
    let (x_any, w_any, y_any) = (act(&xd)?, any(&wd)?, act(&yd)?);
    let axes = |v: [usize; 3], minus: usize| -> Dims {
        let mut d = [0; 12];
        let v = if g.is_2d { &v[1..] } else { &v[..] };
        for (a, &s) in d.iter_mut().zip(v) {
            *a = s as i64 - minus as i64;
        }
        d
    };
    let (s, dil, p) = (axes(g.stride, 0), axes(g.dilation, 1), axes(g.padding, 0));
    let mut desc = Box::new(ConvDesc([0; 8192]));
    // SAFETY: every descriptor pointer is valid, `desc` is larger than
    // dnnl_convolution_desc_t, the dims arrays hold 12 entries.
    let status = unsafe {
        match pass {
            Pass::Forward => (api.conv_fwd_init)(
                &mut *desc,
                FORWARD_TRAINING,
                CONVOLUTION_DIRECT,
                &*x_any,
                &*w_any,
                std::ptr::null(),
                &*y_any,
                s.as_ptr(),
                dil.as_ptr(),
                p.as_ptr(),
                p.as_ptr(),
            ),
            Pass::InputGrad => (api.conv_bwd_data_init)(
                &mut *desc,
                CONVOLUTION_DIRECT,
                &*x_any,
                &*w_any,
                &*y_any,
                s.as_ptr(),
                dil.as_ptr(),
                p.as_ptr(),
                p.as_ptr(),
            ),
            Pass::WeightGrad => (api.conv_bwd_weights_init)(
                &mut *desc,
                CONVOLUTION_DIRECT,
                &*x_any,
                &*w_any,
                std::ptr::null(),
                &*y_any,
                s.as_ptr(),
                dil.as_ptr(),
                p.as_ptr(),
                p.as_ptr(),
            ),
        }
    };
    check(status, "convolution descriptor")?;
    let mut attr = std::ptr::null_mut();
    // SAFETY: attr_create writes one handle, destroyed below.
    check(
        unsafe { (api.attr_create)(&mut attr) },
        "primitive_attr_create",
    )?;
    let mut pd = std::ptr::null_mut();
    let hint_pd = hint.map_or(std::ptr::null_mut(), |h| h.main.pd);
    // SAFETY: valid descriptor, attribute, engine and (optional) hint.
    let status = unsafe {
        (api.attr_set_scratchpad_mode)(attr, SCRATCHPAD_USER);
        let status = (api.primitive_desc_create)(
            &mut pd,
            (&*desc as *const ConvDesc).cast(),
            attr,
            api.engine,
            hint_pd,
        );
        (api.attr_destroy)(attr);
        status
    };
    check(status, "convolution primitive descriptor")?;
    api.primitive(pd)
}

impl Plan {
    /// Builds the plan of `pass` for geometry `g`.
    ///
    /// For some small convolutions oneDNN 2.6 picks its GEMM
    /// implementation, which builds the im2col buffer in scalar loops, when
    /// it may choose the layouts: the weight gradient of R3D-10's 8-channel
    /// 3x3x3 convolution on 4x16x16 clips (0.26 ms at batch 1, seven times
    /// its forward; 5.9 ms at batch 16), and the forward of DeepLabV3's
    /// ASPP branch at rate 6 on a 4x4 map (0.82 ms at batch 32). Given
    /// channels-last activations it runs a direct kernel instead: 0.04,
    /// 0.73 and 0.065 ms, reorders included (one core, 2026-12-01). So a
    /// plan that came out as GEMM is built again with channels-last
    /// activations, and that one is kept if oneDNN found a direct kernel
    /// for it. Pointwise convolutions are GEMMs by design (see
    /// [`Activations::Chosen`]).
    fn build(
        api: &'static Api,
        g: &Geometry,
        pass: Pass,
        hint: Option<&Plan>,
    ) -> candle_core::Result<Self> {
        let (xd, wd, yd) = dims(g);
        let mut main = conv_primitive(api, g, pass, hint, Activations::Chosen)?;
        if !g.is_pointwise() && is_gemm_fallback(&main.implementation()) {
            // The retry is optional: without it the first plan stands.
            if let Ok(other) = conv_primitive(api, g, pass, hint, Activations::ChannelsLast) {
                if is_direct(&other.implementation()) {
                    main = other;
                }
            }
        }
        let (ins, out) = match pass {
            Pass::Forward => ([(ARG_SRC, &xd), (ARG_WEIGHTS, &wd)], (ARG_DST, &yd)),
            Pass::InputGrad => (
                [(ARG_DIFF_DST, &yd), (ARG_WEIGHTS, &wd)],
                (ARG_DIFF_SRC, &xd),
            ),
            Pass::WeightGrad => (
                [(ARG_SRC, &xd), (ARG_DIFF_DST, &yd)],
                (ARG_DIFF_WEIGHTS, &wd),
            ),
        };
        let port = |(arg, d): (c_int, &Vec<usize>),
                    into_inner: bool|
         -> candle_core::Result<Port<'static>> {
            let plain = api.md(d, PLAIN_TAGS[d.len()])?;
            // SAFETY: the query returns null or a descriptor owned by `pd`.
            let inner = unsafe { (api.primitive_desc_query_md)(main.pd, query_for(arg), 0) };
            if inner.is_null() {
                candle_core::bail!("oneDNN: no layout for argument {arg}");
            }
            // SAFETY: two valid descriptors.
            let same = unsafe { (api.memory_desc_equal)(&*plain, inner) } != 0;
            let reorder = if same {
                None
            } else {
                let (src, dst) = if into_inner {
                    (&*plain as *const MemoryDesc, inner)
                } else {
                    (inner, &*plain as *const MemoryDesc)
                };
                let mut rpd = std::ptr::null_mut();
                // SAFETY: valid descriptors and engine, no attribute.
                check(
                    unsafe {
                        (api.reorder_pd_create)(
                            &mut rpd,
                            src,
                            api.engine,
                            dst,
                            api.engine,
                            std::ptr::null_mut(),
                        )
                    },
                    "reorder primitive descriptor",
                )?;
                Some(api.primitive(rpd)?)
            };
            // SAFETY: a valid descriptor.
            let (inner_len, plain_len) = unsafe {
                (
                    (api.memory_desc_get_size)(inner),
                    (api.memory_desc_get_size)(&*plain),
                )
            };
            Ok(Port {
                arg,
                plain,
                inner,
                inner_len,
                plain_len,
                reorder,
            })
        };
        let inputs = [port(ins[0], true)?, port(ins[1], true)?];
        let output = port(out, false)?;
        // SAFETY: as for the ports' queries.
        let scratchpad = unsafe { (api.primitive_desc_query_md)(main.pd, QUERY_SCRATCHPAD_MD, 0) };
        let scratchpad_len = if scratchpad.is_null() {
            0
        } else {
            // SAFETY: a valid descriptor.
            unsafe { (api.memory_desc_get_size)(scratchpad) }
        };
        Ok(Plan {
            main,
            inputs,
            output,
            scratchpad,
            scratchpad_len,
        })
    }
}

/// A oneDNN memory object, destroyed on drop.
struct Memory(Handle);

impl Memory {
    fn new(api: &Api, md: *const MemoryDesc) -> candle_core::Result<Self> {
        let mut mem = std::ptr::null_mut();
        // SAFETY: a valid descriptor; a null handle creates the memory
        // object without a buffer, which `bind` sets before every use.
        check(
            unsafe { (api.memory_create)(&mut mem, md, api.engine, std::ptr::null_mut()) },
            "memory_create",
        )?;
        Ok(Self(mem))
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        if let Ok(api) = api() {
            // SAFETY: created by memory_create, destroyed once.
            unsafe { (api.memory_destroy)(self.0) };
        }
    }
}

/// A CPU stream, destroyed on drop.
struct Stream(Handle);

impl Stream {
    fn new(api: &Api) -> candle_core::Result<Self> {
        let mut s = std::ptr::null_mut();
        // SAFETY: stream_create writes one handle.
        check(
            unsafe { (api.stream_create)(&mut s, api.engine, STREAM_DEFAULT) },
            "stream_create",
        )?;
        Ok(Self(s))
    }

    fn execute(&self, api: &Api, prim: &Prim, args: &[ExecArg]) -> candle_core::Result<()> {
        // SAFETY: every argument's memory object points at a live buffer
        // for the call, which waits for completion before returning.
        unsafe {
            check(
                (api.primitive_execute)(prim.prim, self.0, args.len() as c_int, args.as_ptr()),
                "primitive_execute",
            )?;
            check((api.stream_wait)(self.0), "stream_wait")
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Ok(api) = api() {
            // SAFETY: created by stream_create, destroyed once.
            unsafe { (api.stream_destroy)(self.0) };
        }
    }
}

/// A thread's stream and its memory objects, one per memory descriptor of
/// the plans it ran, pointed at each call's buffers with
/// `memory_set_data_handle`. Creating them per call (six memory objects
/// and a stream per convolution) took a third of the convolutions' time on
/// the comparisons' small models (perf, 2026-11-30). Plans are never
/// dropped, so a descriptor's address names it for the process's life;
/// within one call every descriptor is a different tensor's.
struct Bindings {
    stream: Stream,
    memories: HashMap<usize, Memory>,
}

thread_local! {
    static BINDINGS: std::cell::RefCell<Option<Bindings>> = const { std::cell::RefCell::new(None) };
}

impl Bindings {
    /// Runs `f` with this thread's bindings, creating them on first use.
    fn with<R>(
        api: &Api,
        f: impl FnOnce(&mut Bindings) -> candle_core::Result<R>,
    ) -> candle_core::Result<R> {
        BINDINGS.with_borrow_mut(|b| {
            let b = match b {
                Some(b) => b,
                None => b.insert(Bindings {
                    stream: Stream::new(api)?,
                    memories: HashMap::new(),
                }),
            };
            f(b)
        })
    }

    /// The memory object of descriptor `md`, pointed at `data` (which must
    /// hold the descriptor's size and outlive its use in this call).
    fn bind(
        &mut self,
        api: &Api,
        md: *const MemoryDesc,
        data: *mut c_void,
    ) -> candle_core::Result<Handle> {
        let mem = match self.memories.entry(md as usize) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Memory::new(api, md)?),
        };
        // SAFETY: a live memory object of this engine; the stream is this
        // thread's.
        check(
            unsafe { (api.memory_set_data_handle)(mem.0, data, self.stream.0) },
            "memory_set_data_handle",
        )?;
        Ok(mem.0)
    }
}

/// A buffer of at least `bytes` bytes for oneDNN to write (its blocked
/// copies, its scratchpad), taken from this thread's pool and returned to it
/// on drop: fresh allocations of this size are page-faulted in on every
/// call, which cost as much as the reorders themselves. Its contents are
/// never read from Rust, so they stay uninitialised (length 0, capacity
/// `bytes`).
struct Buffer(Vec<u8>);

/// Buffers a thread keeps for reuse.
const POOL_SIZE: usize = 8;

thread_local! {
    static POOL: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Buffer {
    fn take(bytes: usize) -> Self {
        let reused = POOL.with_borrow_mut(|pool| {
            let best = (0..pool.len())
                .filter(|&i| pool[i].capacity() >= bytes)
                .min_by_key(|&i| pool[i].capacity())?;
            Some(pool.swap_remove(best))
        });
        Self(reused.unwrap_or_else(|| Vec::with_capacity(bytes.max(64))))
    }

    fn ptr(&mut self) -> *mut c_void {
        self.0.as_mut_ptr().cast()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        POOL.with_borrow_mut(|pool| {
            pool.push(buf);
            if pool.len() > POOL_SIZE {
                let smallest = (0..pool.len()).min_by_key(|&i| pool[i].capacity());
                if let Some(i) = smallest {
                    pool.swap_remove(i);
                }
            }
        });
    }
}

impl Plan {
    /// Runs the pass on two plain inputs, writing the plain output of
    /// `out_len` elements into `out`'s capacity.
    fn execute(
        &self,
        inputs: [&[f32]; 2],
        out: &mut Vec<f32>,
        out_len: usize,
    ) -> candle_core::Result<()> {
        let api = api().map_err(candle_core::Error::msg)?;
        Bindings::with(api, |b| self.execute_bound(api, b, inputs, out, out_len))
    }

    fn execute_bound(
        &self,
        api: &Api,
        b: &mut Bindings,
        inputs: [&[f32]; 2],
        out: &mut Vec<f32>,
        out_len: usize,
    ) -> candle_core::Result<()> {
        // Buffers the primitive reads or writes, alive until it ran.
        let mut keep = Vec::with_capacity(4);
        let mut args = Vec::with_capacity(4);
        for (port, data) in self.inputs.iter().zip(inputs) {
            let bytes = port.plain_len;
            if std::mem::size_of_val(data) != bytes {
                candle_core::bail!(
                    "oneDNN: input {} has {} bytes, the plan expects {bytes}",
                    port.arg,
                    std::mem::size_of_val(data)
                );
            }
            let plain = b.bind(api, &*port.plain, data.as_ptr() as *mut c_void)?;
            match &port.reorder {
                None => args.push(ExecArg {
                    arg: port.arg,
                    memory: plain,
                }),
                Some(reorder) => {
                    let mut buf = Buffer::take(port.inner_len);
                    let inner = b.bind(api, port.inner, buf.ptr())?;
                    b.stream.execute(
                        api,
                        reorder,
                        &[
                            ExecArg {
                                arg: ARG_SRC,
                                memory: plain,
                            },
                            ExecArg {
                                arg: ARG_DST,
                                memory: inner,
                            },
                        ],
                    )?;
                    args.push(ExecArg {
                        arg: port.arg,
                        memory: inner,
                    });
                    keep.push(buf);
                }
            }
        }
        let out_bytes = self.output.plain_len;
        if out_bytes != out_len * 4 || out.capacity() < out_len {
            candle_core::bail!("oneDNN: output of {out_bytes} bytes, {out_len} f32 expected");
        }
        let plain_out = b.bind(api, &*self.output.plain, out.as_mut_ptr().cast())?;
        let inner_out = match &self.output.reorder {
            None => None,
            Some(_) => {
                let mut buf = Buffer::take(self.output.inner_len);
                let inner = b.bind(api, self.output.inner, buf.ptr())?;
                keep.push(buf);
                Some(inner)
            }
        };
        args.push(ExecArg {
            arg: self.output.arg,
            memory: inner_out.unwrap_or(plain_out),
        });
        if self.scratchpad_len > 0 {
            let mut scratch = Buffer::take(self.scratchpad_len);
            args.push(ExecArg {
                arg: ARG_SCRATCHPAD,
                memory: b.bind(api, self.scratchpad, scratch.ptr())?,
            });
            keep.push(scratch);
        }
        b.stream.execute(api, &self.main, &args)?;
        if let (Some(reorder), Some(inner)) = (&self.output.reorder, inner_out) {
            b.stream.execute(
                api,
                reorder,
                &[
                    ExecArg {
                        arg: ARG_SRC,
                        memory: inner,
                    },
                    ExecArg {
                        arg: ARG_DST,
                        memory: plain_out,
                    },
                ],
            )?;
        }
        drop(keep);
        Ok(())
    }
}

/// Forward FLOPs below which a convolution runs on one OpenMP thread: the
/// wake-up and hand-off of a second thread cost more than it saves on the
/// small convolutions of CPU-scale models (the Fashion-VOC DeepLabV3 config:
/// median 20.6 against 16.0 steps/s over five interleaved pairs of runs).
const SMALL_CONV_FLOPS: usize = 30_000_000;

impl Api {
    /// Sets this thread's OpenMP thread count for geometry `g`, before its
    /// plan is built (oneDNN sizes its kernels' work split then) and run:
    /// 1 for small convolutions, else OpenMP's maximum capped at the
    /// calling rayon pool's size (a comparison job's share of the cores,
    /// [`crate::threads`]).
    fn set_threads(&self, g: &Geometry) {
        let flops = 2 * g.n * g.o * g.l() * g.k();
        let threads = if flops < SMALL_CONV_FLOPS {
            1
        } else {
            self.max_threads.min(rayon::current_num_threads() as c_int)
        };
        if let Some(set) = self.omp_set_num_threads {
            // SAFETY: sets a per-thread OpenMP setting.
            unsafe { set(threads) };
        }
    }
}

/// The cached plan of `pass` for geometry `g`, built on first use (the
/// backward passes build the forward plan first: it is their hint).
fn plan(g: &Geometry, pass: Pass) -> candle_core::Result<Arc<Plan>> {
    type Cache = Mutex<HashMap<(Geometry, Pass), Arc<Plan>>>;
    static PLANS: OnceLock<Cache> = OnceLock::new();
    let api = api().map_err(candle_core::Error::msg)?;
    let mut plans = PLANS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = plans.get(&(*g, pass)) {
        return Ok(p.clone());
    }
    let hint = match pass {
        Pass::Forward => None,
        _ => Some(match plans.get(&(*g, Pass::Forward)) {
            Some(p) => p.clone(),
            None => {
                let p = Arc::new(Plan::build(api, g, Pass::Forward, None)?);
                plans.insert((*g, Pass::Forward), p.clone());
                p
            }
        }),
    };
    let p = Arc::new(Plan::build(api, g, pass, hint.as_deref())?);
    plans.insert((*g, pass), p.clone());
    Ok(p)
}

/// Runs `pass` of geometry `g` on its two contiguous f32 inputs (see
/// [`Pass`] for which), returning the contiguous result of `out_len`
/// elements.
pub(crate) fn run(
    g: &Geometry,
    pass: Pass,
    a: &[f32],
    b: &[f32],
    out_len: usize,
) -> candle_core::Result<Vec<f32>> {
    let api = api().map_err(candle_core::Error::msg)?;
    api.set_threads(g);
    let plan = plan(g, pass)?;
    let mut out = Vec::with_capacity(out_len);
    plan.execute([a, b], &mut out, out_len)?;
    // SAFETY: execute wrote every one of the `out_len` elements.
    unsafe { out.set_len(out_len) };
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(n: usize, c: usize, o: usize, input: [usize; 3], dilation: usize) -> Geometry {
        let kernel = if input[0] == 1 { [1, 3, 3] } else { [3; 3] };
        let pad = |k: usize| (k / 2) * dilation;
        let padding = kernel.map(pad);
        let dilation = kernel.map(|k| if k == 1 { 1 } else { dilation });
        Geometry {
            n,
            c,
            o,
            groups: 1,
            input,
            kernel,
            stride: [1; 3],
            padding,
            dilation,
            output: input,
            is_2d: input[0] == 1,
        }
    }

    /// Where oneDNN, choosing the layouts, falls back to its GEMM
    /// implementation and has a direct kernel for channels-last
    /// activations, the plan takes the direct kernel.
    #[test]
    fn plans_take_a_direct_kernel_over_the_gemm_fallback() -> candle_core::Result<()> {
        let api = api().map_err(candle_core::Error::msg)?;
        let cases = [
            // R3D-10's 8-channel convolution on 4x16x16 clips.
            (geometry(1, 8, 8, [4, 16, 16], 1), Pass::WeightGrad),
            (geometry(16, 8, 8, [4, 16, 16], 1), Pass::WeightGrad),
            // DeepLabV3's ASPP branch at rate 6 on a 4x4 map.
            (geometry(32, 64, 32, [1, 4, 4], 6), Pass::Forward),
        ];
        for (g, pass) in cases {
            let hint = match pass {
                Pass::Forward => None,
                _ => Some(plan(&g, Pass::Forward)?),
            };
            let chosen = conv_primitive(api, &g, pass, hint.as_deref(), Activations::Chosen)?;
            let last = conv_primitive(api, &g, pass, hint.as_deref(), Activations::ChannelsLast)?;
            let (chosen, last) = (chosen.implementation(), last.implementation());
            // This machine's oneDNN falls back to GEMM here, and has a direct
            // kernel for channels-last activations.
            assert!(is_gemm_fallback(&chosen), "{g:?} {pass:?}: {chosen}");
            assert!(is_direct(&last), "{g:?}: {last}");
            assert!(is_direct("brgemm:avx512_core") && !is_direct("x64:gemm:jit"));
            let got = plan(&g, pass)?.main.implementation();
            assert_eq!(got, last, "{g:?} {pass:?}");
        }
        Ok(())
    }
}
