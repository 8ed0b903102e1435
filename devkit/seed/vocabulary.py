"""What the demo data is made of: word lists, places, the vendor list and the per-user rates.

Everything here is fixed for every seed; only the bulk generator's random streams choose among it.
"""
from __future__ import annotations

from dataclasses import dataclass

WINDOW_DAYS = 730  # "timestamps in the two years before the anchor"

# How far the rows reach from the anchor: births up to 80 years back (the oldest bulk users) and up to 3,000 days
# ahead (birth dates typed in the future). An anchor must leave that room in the calendar (years 1 to 9999), with
# a margin: nearer its ends, date arithmetic overflows.
REACH_BACK_YEARS = 100
REACH_AHEAD_YEARS = 10

# The seed builds each table whole in memory before COPY (about 1.2 GB at a million users, docs/benchmarks.md):
# ten million users are about 12 GB; a billion would be killed by the kernel rather than refused.
MAX_USERS = 10_000_000

# Rates per bulk user (Poisson means) and shares of bulk rows carrying a dirty case.
PER_USER = {
    "privacy_requests": 0.03,
    "uploads": 1.0,
    "support_messages": 0.3,
    "usage_events": 5.0,
    "access_logs": 4.0,
    "social_profiles": 0.3,
    "data_shares": 1.5,
    "child_reports": 0.0004,
    "legal_holds": 0.002,
    "email_suppressions": 0.005,
}

FIRST_NAMES = [
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
    "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen",
    "Daniel", "Lisa", "Matthew", "Nancy", "Anthony", "Betty", "Mark", "Sandra", "Steven", "Ashley",
    "Paul", "Emily", "Andrew", "Michelle", "Joshua", "Amanda", "Kevin", "Melissa", "Brian", "Stephanie",
    "George", "Rebecca", "Timothy", "Laura", "Jason", "Emma", "Ryan", "Olivia", "Jacob", "Sophia",
    "Lukas", "Hannah", "Leon", "Mia", "Finn", "Lena", "Jonas", "Lea", "Noah", "Clara",
    "Louis", "Camille", "Hugo", "Chloe", "Gabriel", "Manon", "Arthur", "Ines", "Jules", "Louise",
    "Lucas", "Sofia", "Mateo", "Lucia", "Pablo", "Martina", "Diego", "Valentina", "Marco", "Giulia",
    "Sven", "Astrid", "Lars", "Ingrid", "Piotr", "Agnieszka", "Jan", "Anna", "Sean", "Aoife",
    "Raj", "Priya", "Arjun", "Ananya", "Hiroshi", "Yuki", "Wei", "Mei", "Kwame", "Amara",
    "Joao", "Ana", "Carlos", "Fernanda", "Ahmed", "Fatima", "Omar", "Layla", "Liam", "Zoe",
]
LAST_NAMES = [
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Mueller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Hoffmann", "Koch",
    "Dubois", "Moreau", "Laurent", "Simon", "Michel", "Lefebvre", "Leroy", "Roux", "Fournier", "Girard",
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco",
    "Jansen", "de Vries", "van Dijk", "Bakker", "Visser", "Andersson", "Johansson", "Nilsson", "Kowalski",
    "Nowak", "Murphy", "Kelly", "O'Brien", "Walsh", "Silva", "Santos", "Oliveira", "Patel", "Sharma",
    "Singh", "Tanaka", "Suzuki", "Sato", "Wang", "Li", "Zhang", "Mensah", "Okafor", "Haddad", "Kaya",
]
COMPANY_PARTS = [
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent", "Cyberdyne",
    "Tyrell", "Wonka", "Gringotts", "Oceanic", "Pied Piper", "Aperture", "Black Mesa", "Blue Sun", "Nakatomi",
    "Massive Dynamic", "Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware", "Adventure Works",
    "Bluth", "Dunder Mifflin", "Sterling Cooper", "Prestige", "Monarch", "Zenith", "Vertex", "Quantum",
]
COMPANY_SUFFIXES = ["Inc", "LLC", "Ltd", "GmbH", "SAS", "BV", "AB", "S.p.A.", "Corp", "Group", "Labs"]
EMAIL_DOMAINS = [
    "example.com", "example.org", "example.net", "mail.example.com", "inbox.example.org", "post.example.net",
    "corp.example.com", "web.example.de", "courrier.example.fr",
]
STREETS = [
    "Main", "Oak", "Maple", "Cedar", "Elm", "Pine", "Washington", "Lake", "Hill", "Park", "Sunset",
    "Market", "Church", "Mill", "River", "Forest", "Highland", "Station", "Garden", "King",
]
STREET_SUFFIXES = ["Street", "Avenue", "Road", "Lane", "Drive", "Way", "Boulevard", "Court"]
EU_STREETS = [
    "Hauptstrasse", "Bahnhofstrasse", "Rue de la Paix", "Rue Victor Hugo", "Via Roma", "Calle Mayor",
    "Kerkstraat", "Storgatan", "Ulica Dluga", "Rua Augusta", "Gran Via", "Schillerstrasse",
]

# (country, weight, calling code, cities); US cities are keyed by state in US_CITIES instead.
COUNTRIES = [
    ("US", 0.40, "1", []),
    ("DE", 0.07, "49", ["Berlin", "Munich", "Hamburg", "Cologne", "Frankfurt"]),
    ("FR", 0.06, "33", ["Paris", "Lyon", "Marseille", "Toulouse", "Nantes"]),
    ("NL", 0.03, "31", ["Amsterdam", "Rotterdam", "Utrecht", "The Hague"]),
    ("IE", 0.02, "353", ["Dublin", "Cork", "Galway"]),
    ("ES", 0.04, "34", ["Madrid", "Barcelona", "Valencia", "Seville"]),
    ("IT", 0.04, "39", ["Rome", "Milan", "Naples", "Turin", "Florence"]),
    ("SE", 0.02, "46", ["Stockholm", "Gothenburg", "Malmo"]),
    ("PL", 0.02, "48", ["Warsaw", "Krakow", "Gdansk", "Wroclaw"]),
    ("BE", 0.015, "32", ["Brussels", "Antwerp", "Ghent"]),
    ("AT", 0.01, "43", ["Vienna", "Graz", "Salzburg"]),
    ("DK", 0.01, "45", ["Copenhagen", "Aarhus"]),
    ("FI", 0.01, "358", ["Helsinki", "Espoo", "Tampere"]),
    ("PT", 0.01, "351", ["Lisbon", "Porto"]),
    ("GB", 0.06, "44", ["London", "Manchester", "Birmingham", "Edinburgh", "Bristol"]),
    ("CA", 0.04, "1", ["Toronto", "Montreal", "Vancouver", "Calgary", "Ottawa"]),
    ("AU", 0.03, "61", ["Sydney", "Melbourne", "Brisbane", "Perth"]),
    ("BR", 0.03, "55", ["Sao Paulo", "Rio de Janeiro", "Belo Horizonte"]),
    ("IN", 0.04, "91", ["Bengaluru", "Mumbai", "Delhi", "Hyderabad", "Pune"]),
    ("JP", 0.02, "81", ["Tokyo", "Osaka", "Yokohama", "Kyoto"]),
    ("MX", 0.02, "52", ["Mexico City", "Guadalajara", "Monterrey"]),
]
COUNTRY_NULL_SHARE = 0.02
US_CITIES = {
    "CA": ["Los Angeles", "San Francisco", "San Diego", "San Jose", "Sacramento", "Oakland", "Fresno"],
    "NY": ["New York", "Buffalo", "Rochester", "Albany"],
    "TX": ["Houston", "Austin", "Dallas", "San Antonio"],
    "FL": ["Miami", "Orlando", "Tampa", "Jacksonville"],
    "WA": ["Seattle", "Spokane", "Tacoma"],
    "IL": ["Chicago", "Springfield", "Naperville"],
    "MA": ["Boston", "Cambridge", "Worcester"],
    "CO": ["Denver", "Boulder", "Colorado Springs"],
    "GA": ["Atlanta", "Savannah"],
    "OR": ["Portland", "Eugene"],
    "NC": ["Charlotte", "Raleigh", "Durham"],
    "VA": ["Arlington", "Richmond", "Norfolk"],
}
US_CA_SHARE = 1 / 3  # of US users, the share in California (CCPA)
PROVINCES = {"CA": ["ON", "QC", "BC", "AB"], "AU": ["NSW", "VIC", "QLD", "WA"]}

USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:144.0) Gecko/20100101 Firefox/144.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0.0.0 Safari/537.36 Edg/141.0.0.0",
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.7 Mobile/15E148 Safari/604.1",
    "acme-cli/3.4.1 (linux; amd64)",
    "acme-python-sdk/2.11.0 python/3.12.7",
    "curl/8.10.1",
    "PostmanRuntime/7.42.0",
    "okhttp/4.12.0",
    "Zapier",
]
ISPS = [
    "Comcast Cable", "AT&T Internet", "Verizon Fios", "Charter Spectrum", "Cox Communications",
    "Deutsche Telekom", "Vodafone", "Orange", "Free SAS", "Telefonica", "TIM", "KPN", "Ziggo",
    "BT", "Sky Broadband", "Virgin Media", "Rogers", "Bell Canada", "Telstra", "NTT", "Jio", "Claro",
    "Amazon AWS", "Google Cloud", "DigitalOcean", "Hetzner",
]
REFERRERS = [
    "https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/", "https://news.ycombinator.com/",
    "https://www.linkedin.com/", "https://twitter.com/", "https://github.com/", "https://www.reddit.com/",
    "https://app.example.com/dashboard", "https://docs.example.com/api", "https://example.com/pricing",
    "https://mail.example.com/",
]
EVENT_TYPES = ["api_call", "feature_used", "session", "export", "login"]
EVENT_WEIGHTS = [0.35, 0.3, 0.2, 0.05, 0.1]
FEATURES = [
    "dashboard", "reports", "editor", "file_import", "google_drive_import", "sharing", "comments",
    "search", "billing", "api_keys", "webhooks", "integrations", "team_admin", "export_csv", "notifications",
]
UPLOAD_WORDS = [
    "report", "invoice", "contract", "notes", "budget", "roadmap", "photo", "scan", "presentation",
    "minutes", "proposal", "draft", "summary", "plan", "receipt", "resume", "backup", "data",
]
UPLOAD_EXTS = ["pdf", "docx", "xlsx", "csv", "png", "jpg", "pptx", "txt", "zip", "json"]
SUPPORT_SUBJECTS = [
    "Cannot log in", "Billing question", "Refund request", "API rate limit", "Feature request",
    "Bug report", "Import from Google Drive failed", "Change my email address", "Delete my account",
    "Invoice copy", "Two-factor authentication", "Data export", "Team seat upgrade",
]
SUPPORT_BODIES = [
    "I have been trying to reset my password but the link never arrives.",
    "Could you send me a copy of last month's invoice for our accounting department?",
    "Our integration keeps getting HTTP 429 responses since yesterday afternoon.",
    "The import from Google Drive stops at 80% and then shows an error.",
    "Please update the billing address on our account; we moved offices.",
    "Is it possible to export all comments on a document as CSV?",
    "I was charged twice this month, can you please look into it?",
    "Please close my account and remove my files.",
    "The dashboard is very slow when I open the reports tab.",
    "How do I add a colleague to my team without buying a new seat?",
]
SOCIAL_NETWORKS = [
    ("linkedin", "https://www.linkedin.com/in/"),
    ("twitter", "https://twitter.com/"),
    ("github", "https://github.com/"),
    ("facebook", "https://www.facebook.com/"),
    ("instagram", "https://www.instagram.com/"),
]
STAFF_EMAILS = ["dpo@example.com", "privacy-team@example.com", "legal@example.com"]
EXTENSION_REASONS = [
    "complex request spanning several systems",
    "large number of requests from the same requester",
    "large data volume in archived storage",
]
HOLD_REASONS = [
    "litigation hold: pending lawsuit", "regulatory investigation", "tax audit retention",
    "fraud investigation", "law-enforcement preservation request",
]
REPORT_NOTES = [
    "Parent says the account belongs to their child.",
    "Support agent noticed the user mentioning primary school.",
    "Automated classifier flagged the profile photo and bio.",
    "Teacher reported a student account.",
]
GDPR_TYPES = ["access", "rectification", "erasure", "restriction", "objection", "portability"]
CCPA_TYPES = ["know", "delete", "opt_out_of_sale"]
UNKNOWN_TYPES = ["erase_everything", "data_request", "unsubscribe"]
UNKNOWN_REGIMES = ["lgpd", "pipeda", "pdpa"]
CATEGORIES = ["contact", "account", "content", "usage", "network", "social", "support"]
LEGAL_BASES = {
    "service_provider": "contract",
    "channel_partner": "legitimate_interest",
    "consultant": "legitimate_interest",
    "implementation_partner": "contract",
    "law_enforcement": "legal_obligation",
    "acquirer": "legitimate_interest",
}
UNKNOWN_VENDOR_IDS = [9001, 9002]


@dataclass(frozen=True)
class Vendor:
    id: int
    name: str
    kind: str
    dpa_days_before_anchor: int | None  # None: no DPA signed
    categories: tuple[str, ...]
    active: bool
    weight: float  # relative share of bulk data_shares
    purposes: tuple[str, ...]
    contact: str | None


# Fixed for every seed: the vendor list is small and its edge cases (no DPA, DPA signed after the
# shares, inactive) are what the manifest DAG is tested on.
VENDORS = [
    Vendor(1, "CloudHost Inc", "service_provider", 900, ("contact", "account", "content", "usage", "network", "support"), True, 30, ("hosting", "backups"), "privacy@cloudhost.example"),
    Vendor(2, "MailRelay LLC", "service_provider", 800, ("contact", "account"), True, 20, ("transactional email delivery",), "dpo@mailrelay.example"),
    Vendor(3, "MetricsWorks", "service_provider", 700, ("usage", "network", "account"), True, 15, ("product analytics", "performance monitoring"), "legal@metricsworks.example"),
    Vendor(4, "PayStream", "service_provider", 750, ("contact", "account"), True, 8, ("payment processing",), "privacy@paystream.example"),
    Vendor(5, "HelpDesk Pro", "service_provider", 850, ("contact", "support", "account"), True, 8, ("customer support tooling",), None),
    Vendor(6, "DriveSync Connector", "service_provider", 600, ("content", "account"), True, 5, ("google drive import",), "support@drivesync.example"),
    Vendor(7, "QuickAnalytics", "service_provider", None, ("usage", "network"), True, 1, ("usage analytics",), None),
    Vendor(8, "NewCDN Ltd", "service_provider", 45, ("network", "content"), True, 2, ("content delivery",), "noc@newcdn.example"),
    Vendor(9, "Northwind Resellers", "channel_partner", None, ("contact", "account", "usage"), True, 2, ("reseller onboarding", "co-marketing"), "partners@northwind.example"),
    Vendor(10, "Bright Channel Partners", "channel_partner", 300, ("contact", "account"), True, 2, ("co-marketing",), "privacy@brightchannel.example"),
    Vendor(11, "Acme Consulting Group", "consultant", 400, ("account", "usage", "support"), True, 1, ("churn analysis",), "dpo@acmeconsulting.example"),
    Vendor(12, "Integrity Security Auditors", "consultant", None, ("account", "network"), True, 0.5, ("security audit",), None),
    Vendor(13, "Summit Implementation Partners", "implementation_partner", 500, ("account", "content", "usage"), True, 1, ("workspace migration",), "ops@summitimpl.example"),
    Vendor(14, "Blue Harbor Integrators", "implementation_partner", None, ("account", "content"), True, 0.5, ("custom integration",), None),
    Vendor(15, "Metropolitan Police Cyber Unit", "law_enforcement", None, ("contact", "account", "network"), True, 0.2, ("court order response",), None),
    Vendor(16, "District Court Clerk", "law_enforcement", None, ("contact", "account", "network", "content", "support"), True, 0.1, ("subpoena response",), None),
    Vendor(17, "Orion Holdings", "acquirer", 200, tuple(CATEGORIES), True, 0.5, ("merger due diligence",), "dealteam@orion.example"),
    Vendor(18, "SocialReach Ads", "channel_partner", None, ("social", "contact"), False, 0.5, ("audience matching",), "privacy@socialreach.example"),
    Vendor(19, "LegacyMail Co", "service_provider", 1000, ("contact",), False, 0.5, ("newsletter delivery",), None),
    Vendor(20, "DataBridge Partners", "channel_partner", 350, ("contact", "account", "social"), True, 1.5, ("lead sharing",), "dpo@databridge.example"),
    Vendor(21, "Insight Consultants", "consultant", 600, ("usage",), True, 0.5, ("pricing study",), "hello@insight.example"),
]
UNKNOWN_VENDOR_WEIGHT = 0.2
