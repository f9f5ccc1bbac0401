/// Every heap block is wiped when it is freed. Private keys pass through buffers this
/// crate cannot reach (PEM and DER decoding in rustls and rcgen, the mTLS client's copy,
/// the PKCS#12 encoder): wiping them all on free is what leaves no key material in the
/// process once a renewal is over (bench/keyscan.py, tests/key_hygiene.rs). `realloc`
/// is left to the trait's default (allocate, copy, free), so a moved buffer is wiped too.
#[global_allocator]
static ALLOCATOR: zeroizing_alloc::ZeroAlloc<std::alloc::System> =
    zeroizing_alloc::ZeroAlloc(std::alloc::System);

fn main() -> std::process::ExitCode {
    kyma_certd::app::main()
}
