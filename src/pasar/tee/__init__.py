"""TEE attestation: verifying Intel TDX/SGX DCAP quotes offline (:mod:`pasar.tee.verify`), the
report-data binding of a quote to a provider's key and a market nonce
(:mod:`pasar.tee.binding`), and where a provider gets a quote on real hardware
(:mod:`pasar.tee.sources`).

Nothing here is imported by :mod:`pasar.core`: the market verifies a quote at its own clock and
records the verdict in a market-signed ``tee.attest`` transaction, which core trusts.
"""
