#!/usr/bin/env python3
"""Self-test of tests/fakes/fake_entra.py: the fake must refuse what Entra
refuses, or the EntraClient integration test proves nothing. Builds assertions
with the openssl CLI (independently of the C++ code) and checks that the fake
accepts a correct one and refuses a tampered signature, a wrong thumbprint, a
wrong aud/iss, an expired one, a reused jti; that badly encoded forms are
refused; that fault counts and stats work. stdlib only.

usage: test_fake_entra.py   (finds the fakes next to this file's ../fakes)
"""
import base64
import hashlib
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
FAKES = os.path.join(HERE, "..", "fakes")
TENANT = "contoso.onmicrosoft.com"
CLIENT = "conf-client"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class FakeEntraTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"
        cls.dir = tempfile.mkdtemp(prefix="o365-fake-entra-", dir=os.environ.get("TMPDIR"))
        cls.ca = os.path.join(cls.dir, "ca")
        subprocess.run(["sh", os.path.join(FAKES, "make_test_ca.sh"), cls.ca], check=True)
        cls.state = os.path.join(cls.dir, "state")
        os.makedirs(cls.state)
        cls.write_config({})
        cls.log = open(os.path.join(cls.dir, "fake.log"), "w")
        cls.proc = subprocess.Popen(
            [sys.executable, os.path.join(FAKES, "fake_entra.py"), "--state", cls.state,
             "--cert", os.path.join(cls.ca, "server.crt"), "--key",
             os.path.join(cls.ca, "server.key")],
            stdout=subprocess.PIPE, stderr=cls.log, text=True)
        line = cls.proc.stdout.readline()
        assert line.startswith("READY "), line
        cls.port = int(line.split()[1])
        cls.url = "https://127.0.0.1:%d/%s/oauth2/v2.0/token" % (cls.port, TENANT)
        cls.ctx = ssl.create_default_context(cafile=os.path.join(cls.ca, "ca.crt"))
        der = subprocess.run(["openssl", "x509", "-in", os.path.join(cls.ca, "app.crt"),
                              "-outform", "DER"], stdout=subprocess.PIPE, check=True).stdout
        cls.x5t = b64url(hashlib.sha1(der).digest())
        cls.x5t256 = b64url(hashlib.sha256(der).digest())

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait()
        cls.log.close()
        if not os.environ.get("O365_KEEP_TMP"):
            shutil.rmtree(cls.dir)

    @classmethod
    def write_config(cls, extra):
        c = {"tenants": [TENANT], "signing_key": os.path.join(cls.ca, "entra-signing.key"),
             "clients": {CLIENT: {"secret": "a b+c&d=e%f",
                                  "certificate": os.path.join(cls.ca, "app.crt")},
                         "pub": {"public": True}},
             "refresh_tokens": {"0.AR-seed-1": {"client_id": "pub", "mailbox": "u@contoso.com"}}}
        c.update(extra)
        with open(os.path.join(cls.state, "config.json"), "w") as f:
            json.dump(c, f)

    def setUp(self):
        self.write_config({})
        self.faults([])

    def faults(self, faults):
        with open(os.path.join(self.state, "faults.json"), "w") as f:
            json.dump(faults, f)

    def stats(self):
        with open(os.path.join(self.state, "stats.json")) as f:
            return json.load(f)

    def post(self, body, url=None, ctype="application/x-www-form-urlencoded"):
        if isinstance(body, dict):
            body = urllib.parse.urlencode(body, quote_via=urllib.parse.quote)
        req = urllib.request.Request(url or self.url, data=body.encode(), method="POST",
                                     headers={"Content-Type": ctype})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=20) as r:
                return r.status, json.loads(r.read()), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()), dict(e.headers)

    def assertion(self, alg="PS256", aud=None, iss=CLIENT, sub=CLIENT, exp_in=300, jti=None,
                  header=None, key="app.key", sign_as=None):
        now = int(time.time())
        h = header or ({"alg": "PS256", "typ": "JWT", "x5t#S256": self.x5t256} if alg == "PS256"
                       else {"alg": "RS256", "typ": "JWT", "x5t": self.x5t})
        claims = {"aud": aud or self.url, "iss": iss, "sub": sub, "jti": jti or str(uuid.uuid4()),
                  "nbf": now, "iat": now, "exp": now + exp_in}
        signing_input = b64url(json.dumps(h).encode()) + "." + b64url(json.dumps(claims).encode())
        cmd = ["openssl", "dgst", "-sha256", "-sign", os.path.join(self.ca, key)]
        if (sign_as or h.get("alg")) == "PS256":
            cmd += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]
        sig = subprocess.run(cmd, input=signing_input.encode(), stdout=subprocess.PIPE,
                             check=True).stdout
        return signing_input + "." + b64url(sig)

    def cc(self, **cred):
        body = {"grant_type": "client_credentials", "client_id": CLIENT,
                "scope": "https://outlook.office365.com/.default"}
        body.update(cred)
        return self.post(body)

    def cert(self, jwt):
        return self.cc(client_assertion_type=JWT_BEARER, client_assertion=jwt)

    def expect_error(self, answer, status, error, code):
        st, body, _ = answer
        self.assertEqual(st, status, body)
        self.assertEqual(body["error"], error)
        if code:
            self.assertEqual(body["error_codes"], [code])
            self.assertTrue(body["error_description"].startswith("AADSTS%d: " % code))
        for k in ("timestamp", "trace_id", "correlation_id"):
            self.assertIn(k, body)
        self.assertIn("\r\nTrace ID: ", body["error_description"])

    # --- client secret and form encoding -------------------------------------

    def test_secret_ok_and_shape(self):
        st, body, headers = self.cc(client_secret="a b+c&d=e%f")
        self.assertEqual(st, 200, body)
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["expires_in"], 3599)
        self.assertEqual(body["ext_expires_in"], 3599)
        self.assertNotIn("refresh_token", body)
        self.assertTrue(headers["Content-Type"].startswith("application/json"))
        sys.path.insert(0, FAKES)
        import fake_tokens
        claims = fake_tokens.verify(
            fake_tokens.load_key(os.path.join(self.ca, "entra-signing.key")), body["access_token"])
        self.assertEqual(claims["appid"], CLIENT)
        self.assertEqual(claims["tid"], TENANT)
        self.assertEqual(claims["mbx"], "")

    def test_wrong_or_badly_encoded_secret(self):
        self.expect_error(self.cc(client_secret="wrong"), 401, "invalid_client", 7000215)
        # "+" sent raw means a space: the secret no longer matches.
        raw = ("grant_type=client_credentials&client_id=conf-client&scope=https%3A%2F%2Foutlook."
               "office365.com%2F.default&client_secret=a%20b+c%26d%3De%25f")
        self.expect_error(self.post(raw), 401, "invalid_client", 7000215)
        for bad in ("grant_type=client_credentials&client_secret=a b",      # raw space
                    "grant_type=client_credentials&client_secret=a%zz",     # bad escape
                    "grant_type=client_credentials&client_secret=a%4",      # truncated
                    "grant_type=client_credentials&client_secret=%ff%fe",   # not UTF-8
                    "grant_type=client_credentials&client_secret=a=b",      # raw =
                    "grant_type=client_credentials&grant_type=x",           # duplicate
                    "grant_type=client_credentials&client_secret=\xe9"):    # raw 8-bit
            self.expect_error(self.post(bad), 400, "invalid_request", 90023)
        self.expect_error(self.post("grant_type=client_credentials", ctype="text/plain"), 400,
                          "invalid_request", 90023)

    def test_expired_secret_unknown_client_tenant_scope(self):
        self.write_config({"clients": {CLIENT: {"secret": "s", "secret_expired": True}}})
        self.expect_error(self.cc(client_secret="s"), 401, "invalid_client", 7000222)
        self.expect_error(self.post({"grant_type": "client_credentials", "client_id": "nope",
                                     "scope": "x", "client_secret": "s"}),
                          400, "unauthorized_client", 700016)
        st = self.post({"grant_type": "client_credentials", "client_id": CLIENT,
                        "client_secret": "s", "scope": "https://outlook.office365.com/.default"},
                       url=self.url.replace(TENANT, "other.example"))
        self.expect_error(st, 400, "invalid_request", 90002)
        self.write_config({})
        self.expect_error(self.post({"grant_type": "client_credentials", "client_id": CLIENT,
                                     "client_secret": "a b+c&d=e%f",
                                     "scope": "https://graph.microsoft.com/.default"}),
                          400, "invalid_scope", 70011)
        self.expect_error(self.cc(), 401, "invalid_client", 7000218)

    # --- certificate assertion -----------------------------------------------

    def test_assertion_ps256_and_rs256_accepted(self):
        st, body, _ = self.cert(self.assertion("PS256"))
        self.assertEqual(st, 200, body)
        st, body, _ = self.cert(self.assertion("RS256"))
        self.assertEqual(st, 200, body)

    def test_tampered_signature_refused(self):
        jwt = self.assertion()
        h, c, s = jwt.split(".")
        sig = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
        sig[10] ^= 1
        self.expect_error(self.cert(h + "." + c + "." + b64url(bytes(sig))), 401,
                          "invalid_client", 700027)
        # Claims changed after signing.
        claims = json.loads(base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)))
        claims["exp"] += 10
        self.expect_error(self.cert(h + "." + b64url(json.dumps(claims).encode()) + "." + s),
                          401, "invalid_client", 700027)
        # Signed by another key (the rogue one) with the registered thumbprint.
        self.expect_error(self.cert(self.assertion(key="rogue.key")), 401, "invalid_client",
                          700027)
        # RS256-signed but labelled PS256.
        jwt = self.assertion(header={"alg": "PS256", "typ": "JWT", "x5t#S256": self.x5t256},
                             sign_as="RS256")
        self.expect_error(self.cert(jwt), 401, "invalid_client", 700027)

    def test_thumbprint_alg_and_claims(self):
        self.expect_error(self.cert(self.assertion(header={"alg": "PS256", "typ": "JWT",
                                                           "x5t": self.x5t})),
                          401, "invalid_client", 700027)  # PS256 needs x5t#S256
        self.expect_error(self.cert(self.assertion(header={"alg": "RS256", "typ": "JWT",
                                                           "x5t": self.x5t256})),
                          401, "invalid_client", 700027)
        self.expect_error(self.cert(self.assertion(header={"alg": "HS256", "typ": "JWT"})),
                          401, "invalid_client", 50027)
        self.expect_error(self.cert(self.assertion(aud="https://login.microsoftonline.com/x")),
                          401, "invalid_client", 50027)
        self.expect_error(self.cert(self.assertion(iss="other")), 401, "invalid_client", 700021)
        self.expect_error(self.cert(self.assertion(sub="other")), 401, "invalid_client", 700021)
        self.expect_error(self.cert(self.assertion(exp_in=-1000)), 401, "invalid_client", 700024)
        jti = str(uuid.uuid4())
        self.assertEqual(self.cert(self.assertion(jti=jti))[0], 200)
        self.expect_error(self.cert(self.assertion(jti=jti)), 401, "invalid_client", 50027)
        self.expect_error(self.cc(client_assertion_type="x", client_assertion="a.b.c"), 401,
                          "invalid_client", 50027)
        self.expect_error(self.cert("not-a-jwt"), 401, "invalid_client", 50027)

    # --- refresh tokens and device code --------------------------------------

    def refresh(self, rt, client="pub"):
        return self.post({"grant_type": "refresh_token", "client_id": client, "refresh_token": rt,
                          "scope": "https://outlook.office.com/SMTP.Send offline_access"})

    def test_refresh_rotation(self):
        st, body, _ = self.refresh("0.AR-seed-1")
        self.assertEqual(st, 200, body)
        self.assertEqual(body["scope"], "https://outlook.office.com/SMTP.Send")
        new = body["refresh_token"]
        self.assertNotEqual(new, "0.AR-seed-1")
        self.expect_error(self.refresh("0.AR-seed-1"), 400, "invalid_grant", 70008)
        self.expect_error(self.refresh("0.AR-never-issued"), 400, "invalid_grant", 9002313)
        # A confidential client without credentials cannot use it.
        self.expect_error(self.refresh(new, client=CLIENT), 401, "invalid_client", 7000218)
        st, body, _ = self.refresh(new)
        self.assertEqual(st, 200, body)

    def test_device_code_flow(self):
        self.write_config({"device_code": {"polls": ["authorization_pending", "slow_down"],
                                           "interval": 7, "mailbox": "d@contoso.com"}})
        url = self.url.replace("/token", "/devicecode")
        st, dc, _ = self.post({"client_id": "pub",
                               "scope": "https://outlook.office.com/SMTP.Send offline_access"},
                              url=url)
        self.assertEqual(st, 200, dc)
        self.assertEqual(dc["interval"], 7)
        self.assertIn(dc["user_code"], dc["message"])
        poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": "pub",
                "device_code": dc["device_code"]}
        self.expect_error(self.post(poll), 400, "authorization_pending", 70016)
        self.expect_error(self.post(poll), 400, "slow_down", None)
        st, body, _ = self.post(poll)
        self.assertEqual(st, 200, body)
        self.assertIn("refresh_token", body)
        self.expect_error(self.post(poll), 400, "bad_verification_code", None)  # used up

    # --- faults and stats ----------------------------------------------------

    def test_faults_counts_and_stats(self):
        before = self.stats()["by_grant"].get("client_credentials", 0)
        self.faults([{"kind": "429", "retry_after": 17, "count": 1},
                     {"kind": "aadsts", "code": 50076, "count": 1}])
        st, body, headers = self.cc(client_secret="a b+c&d=e%f")
        self.assertEqual(st, 429)
        self.assertEqual(headers["Retry-After"], "17")
        self.expect_error(self.cc(client_secret="a b+c&d=e%f"), 400, "invalid_grant", 50076)
        st, body, _ = self.cc(client_secret="a b+c&d=e%f")
        self.assertEqual(st, 200, body)
        s = self.stats()
        self.assertEqual(s["by_grant"]["client_credentials"], before + 3)
        self.assertGreaterEqual(s["faults"]["429"], 1)
        # grant filter: a refresh-only fault leaves client credentials alone.
        self.faults([{"kind": "500", "grant": "refresh_token"}])
        self.assertEqual(self.cc(client_secret="a b+c&d=e%f")[0], 200)
        self.faults([{"kind": "malformed", "body": "{oops"}])
        req = urllib.request.Request(self.url, data=b"grant_type=client_credentials",
                                     method="POST", headers={"Content-Type":
                                                             "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, context=self.ctx, timeout=20) as r:
            self.assertEqual(r.read(), b"{oops")


if __name__ == "__main__":
    unittest.main(verbosity=2)
