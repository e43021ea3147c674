"""Pure helpers of the chain layer and CLI: revert decoding, masks, amounts, keys."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector
from hypothesis import given
from hypothesis import strategies as st

from marketplace.chain.accounts import account_from_key, parse_address
from marketplace.chain.market import mask_to_words, words_to_mask
from marketplace.chain.revert import decode_revert
from marketplace.chain.units import format_eth, parse_amount
from marketplace.errors import ConfigError, InvalidKey


def test_custom_error_decodes_by_name_with_arguments() -> None:
    data = function_signature_to_4byte_selector("StakeTooLow(uint256,uint256)") + encode(
        ["uint256", "uint256"], [10**15, 10**17]
    )
    name, args, message = decode_revert(data)
    assert name == "StakeTooLow"
    assert args == (10**15, 10**17)  # wei for code, ether for people
    assert message == "StakeTooLow(sent=0.001 ETH, required=0.1 ETH)"


def test_error_string_and_unknown_selector() -> None:
    data = bytes.fromhex("08c379a0") + encode(["string"], ["boom"])
    assert decode_revert(data)[2] == "boom"
    assert decode_revert(b"\xde\xad\xbe\xef")[0] is None
    assert decode_revert(None)[2] == "reverted without a reason"


@given(st.lists(st.booleans(), min_size=0, max_size=700))
def test_mask_words_round_trip(mask: list[bool]) -> None:
    words = mask_to_words(mask, len(mask))
    assert len(words) == (len(mask) + 255) // 256
    assert words_to_mask(words, len(mask)) == mask


@pytest.mark.parametrize(
    ("text", "wei"),
    [("1", 10**18), ("0.5eth", 5 * 10**17), ("10gwei", 10**10), ("7wei", 7), ("1_000wei", 1000)],
)
def test_amounts_parse_to_wei(text: str, wei: int) -> None:
    assert parse_amount(text) == wei


@pytest.mark.parametrize(
    ("wei", "shown"),
    [(0, "0 ETH"), (10**17, "0.1 ETH"), (2 * 10**18, "2 ETH"), (1, "0.000000000000000001 ETH")],
)
def test_amounts_show_in_ether_with_the_unit(wei: int, shown: str) -> None:
    assert format_eth(wei) == shown
    assert parse_amount(shown.removesuffix(" ETH") + "eth") == wei  # what is shown reads back


@pytest.mark.parametrize("text", ["abc", "-1", "0.5wei", ""])
def test_bad_amounts_are_rejected(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid"):
        parse_amount(text)


def test_keys_and_addresses_are_validated_without_echoing_secrets() -> None:
    acct = account_from_key("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
    assert acct.address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    with pytest.raises(InvalidKey) as err:
        account_from_key("0x1234deadbeef")
    assert "1234deadbeef" not in str(err.value)
    assert parse_address("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266").startswith("0xf39Fd6")
    with pytest.raises(ConfigError, match="malformed"):
        parse_address("0x123")


def test_amount_arguments_shown_in_ether_name_real_error_arguments() -> None:
    from marketplace.chain.artifacts import error_selectors
    from marketplace.chain.revert import AMOUNT_ARGS

    declared = {name: set(names) for name, _, names in error_selectors().values()}
    for error, amounts in AMOUNT_ARGS.items():
        assert error in declared and amounts <= declared[error], error
