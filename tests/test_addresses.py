"""The reason recorded for an invalid address reads whole and never holds the address (include/addresses.py).

The reason is stored in the campaign's ledger and printed in task logs, so what the validator repeats of an
address is blanked out. It used to be blanked out wherever a piece of three letters or more appeared, inside
words too: for ``x@mail.`` the reason read "An e… address cannot end with a period".
"""
from __future__ import annotations

import re

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import assume, given, settings, strategies as st

from include.addresses import AddressError, normalize_address, sending_problem

END_PERIOD = "An email address cannot end with a period."
NO_PERIOD = "The part after the @-sign is not valid. It should have a period."
SPECIAL_USE = "The part after the @-sign is a special-use or reserved name that cannot be used with email."


def raw_reason(address: str) -> str:
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        return str(exc)
    raise AssertionError(f"{address!r} is valid")


@pytest.mark.parametrize("address, reason", [
    ("x@mail.", END_PERIOD),              # "mail" is in "email": was "An e… address cannot end with a period."
    ("kate@gmail.", END_PERIOD),
    ("x@period.", END_PERIOD),            # a label that is a word of the reason itself
    ("x@address.", END_PERIOD),
    ("email@x", NO_PERIOD),
    ("part@x", NO_PERIOD),                # was "The … after the @-sign is not valid."
    ("valid@localhost", NO_PERIOD),
    ("use@x.local", SPECIAL_USE),         # "use" of "special-use" and of "used"
    ("kate.smith@example", NO_PERIOD),
    ("bob@ab--cd.com", "An email address cannot have two letters followed by two dashes immediately after the "
                       "@-sign or after a period, except Punycode."),
    ("kåte@example.com", "Internationalized characters before the @-sign are not supported: 'å'."),
    ("bob@exa$mple.com", "The part after the @-sign contains invalid characters: '$'."),
    ("bob＠example.com", 'The email address has the "full-width" at-sign (@) character instead of a regular at-sign.'),
])
def test_an_invalid_address_has_its_reason_whole(address, reason):
    assert raw_reason(address) == reason  # what the validator says; nothing in it is the address
    assert sending_problem(address) == reason


@pytest.mark.parametrize("address, repeated, reason", [
    ("kate@[10.1.2]", "'10.1.2'", "The address in brackets after the @-sign is not valid: It is not an IPv4 address "
                                  "(Expected 4 octets in …) or is missing an address literal tag."),
    ("kate@[IPv6:kate]", "'kate'", "The IPv6 address in brackets after the @-sign is not valid (At least 3 parts "
                                   "expected in …)."),
    # The IDNA check quotes the label decoded from Punycode: not a piece of the address as typed, still its own.
    ("kate@xn--smith.com", "'⢈⡾⢊'", "The part after the @-sign is not valid IDNA (Codepoint U+2888 at position 1 "
                                    "of … not allowed)."),
    ("kate@xn--abc.com", r"'\x82\x81\x80'", "The part after the @-sign is not valid IDNA (Codepoint U+0082 at "
                                            "position 1 of … not allowed)."),
])
def test_what_the_validator_repeats_of_an_address_is_blanked_out(address, repeated, reason):
    assert repeated in raw_reason(address)  # the validator does repeat it: the test can fail
    assert sending_problem(address) == reason


def test_normalize_address_blanks_out_the_same():
    with pytest.raises(AddressError) as err:
        normalize_address(" kate@[10.1.2] ")
    assert "10.1.2" not in str(err.value) and "(Expected 4 octets in …)" in str(err.value)
    with pytest.raises(AddressError, match=f"^{re.escape(END_PERIOD)}$"):
        normalize_address("kate@mail.")


_name = st.text(alphabet="bcdfghjklmnpqrstvwxz", min_size=4, max_size=10)  # no vowel: never one of the reason's words
_faulty_domain = st.one_of(
    st.builds(lambda a, b: f"{a}.{b}.", _name, _name),                    # ends with a period
    st.builds(lambda a, b: f"{a}..{b}", _name, _name),                    # two periods in a row
    st.builds(lambda a: a, _name),                                        # no period
    st.builds(lambda a, b: f"-{a}.{b}", _name, _name),                    # a hyphen after the @-sign
    st.builds(lambda a, b: f"{a}_{b}.com", _name, _name),                 # an invalid character
    st.builds(lambda a: f"xn--{a}.com", _name),                           # Punycode that is not
    st.builds(lambda a: f"[IPv6:{a}]", _name),                            # an IPv6 literal that is not
    st.builds(lambda a, b: f"{a}.{b}.local", _name, _name),               # a special-use name
)


@settings(max_examples=300, deadline=None)
@given(local=st.builds(lambda a, b, sep: f"{a}{sep}{b}", _name, _name, st.sampled_from([".", "+", "", ".."])),
       domain=_faulty_domain)
def test_no_reason_holds_a_piece_of_its_address(local, domain):
    address = f"{local}@{domain}"
    reason = sending_problem(address)
    assume(reason is not None)  # some Punycode is valid after all
    raw = raw_reason(address)
    # Whole: the validator's words are all there; only what it quoted of the address may be blanked out.
    assert reason in (raw, re.sub(r"'[^']*'", "…", raw)), (address, reason)
    pieces = {p for p in re.split(r"[^a-z0-9]+", address.lower()) if len(p) >= 3} - {"xn", "ipv6", "local", "com"}
    for piece in pieces:
        assert piece not in reason.lower(), (address, reason)
