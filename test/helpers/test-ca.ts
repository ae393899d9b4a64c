import { createCaCertificate } from '../../src/tls/ca-certificate.ts';
import { createLeafCertificate } from '../../src/tls/leaf-certificate.ts';
import { generateP256KeyPair, privateKeyToPem } from '../../src/tls/p256-key.ts';

export interface TestCa {
  /** The CA certificate (PEM) a client must trust to reach origins using `leafFor` certificates. */
  readonly caPem: string;
  /** A server certificate and key (PEM) for `hosts`: DNS names and/or IP literals such as `127.0.0.1`. */
  leafFor(hosts: string[]): Promise<{ certPem: string; keyPem: string }>;
}

/**
 * An in-memory CA for test origin servers (HTTPS upstreams on 127.0.0.1 / localhost), independent of
 * the proxy's CertAuthority so a test can tell which side a certificate came from. Writes no files.
 *
 * @example
 * const ca = await createTestCa()
 * const { certPem, keyPem } = await ca.leafFor(['localhost', '127.0.0.1'])
 * https.createServer({ cert: certPem, key: keyPem }, handler).listen(0, '127.0.0.1')
 */
export async function createTestCa(): Promise<TestCa> {
  const caKeys = await generateP256KeyPair();
  const certificate = await createCaCertificate(caKeys, 'fetch-oracle test origin CA');
  const signer = { certificate, privateKey: caKeys.privateKey };
  // One key for every leaf of this CA keeps tests fast; each leaf still gets its own certificate.
  const leafKeys = await generateP256KeyPair();
  const keyPem = privateKeyToPem(leafKeys.privateKey);
  return {
    caPem: certificate.toString('pem'),
    async leafFor(hosts: string[]): Promise<{ certPem: string; keyPem: string }> {
      const leaf = await createLeafCertificate(signer, hosts, leafKeys.publicKey);
      return { certPem: leaf.toString('pem'), keyPem };
    },
  };
}
