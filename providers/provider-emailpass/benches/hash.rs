//! argon2id hash and verify at the default (OWASP) parameters.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use provider_emailpass::{HashOptions, PasswordHashing};

fn bench(c: &mut Criterion) {
    let hashing = PasswordHashing::new(HashOptions::default()).expect("default options are valid");
    let stored = hashing.hash("correct horse battery staple").expect("hash");
    let mut group = c.benchmark_group("argon2id_m19456_t2_p1");
    group.sample_size(20);
    group.bench_function("hash", |b| {
        b.iter(|| hashing.hash("correct horse battery staple").expect("hash"))
    });
    group.bench_function("verify", |b| {
        b.iter(|| {
            assert!(
                hashing
                    .verify(&stored, "correct horse battery staple")
                    .matches
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
