import { X509Certificate, createPrivateKey } from 'node:crypto'
import { test, type TestContext } from 'node:test'
import { fixtureTlsMaterial, tlsMaterial } from '../helpers/util.js'

const YEAR_MS = 365 * 24 * 3600 * 1000

// The shipped pair is only used where `openssl` is missing: check it still fits, so the fallback cannot rot unseen.
for (const [name, load] of [['fixture', fixtureTlsMaterial], ['test-time', tlsMaterial]] as const) {
  test(`the ${name} TLS pair is a key and certificate for IP:127.0.0.1, valid now`, (t: TestContext) => {
    const { key, cert, source } = load()
    t.diagnostic(`source: ${source}`)
    const x509 = new X509Certificate(cert)
    t.assert.strictEqual(x509.checkIP('127.0.0.1'), '127.0.0.1')
    t.assert.ok(x509.checkPrivateKey(createPrivateKey(key)), 'the key belongs to the certificate')
    t.assert.ok(new Date(x509.validFrom).getTime() <= Date.now() + 60_000, `valid from ${x509.validFrom}`)
    const margin = source === 'fixture' ? YEAR_MS : 0
    t.assert.ok(new Date(x509.validTo).getTime() > Date.now() + margin, `valid to ${x509.validTo}`)
  })
}
