"""mmliera: LieRA (Lie-group PEFT, ICCV 2025) for MMDetection."""
import os.path as osp

from setuptools import find_packages, setup


def get_version():
    ns = {}
    with open(osp.join(osp.dirname(__file__), 'mmliera', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


setup(
    name='mmliera',
    version=get_version(),
    description='LieRA: Lie-group parameter-efficient fine-tuning for MMDetection',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmliera', 'mmliera.*']),
    python_requires='>=3.8',
    install_requires=[
        'torch>=2.0',
        'torchvision>=0.15',
        'mmengine>=0.10,<1',
        'mmcv>=2.0,<2.2',
        'mmdet>=3.3,<3.4',
        'mmpretrain>=1.2,<1.3',
        'safetensors>=0.4',
        'pycocotools',
        # mmengine 0.10.7 imports pkg_resources (removed in setuptools 81); torch needs >=77
        'setuptools>=77.0.3,<81',
    ],
    extras_require={
        # the linters of .pre-commit-config.yaml, checked by tests/package/test_lint.py
        'tests': [
            'pytest>=7', 'pytest-timeout>=2.1', 'pytest-xdist>=3.5', 'flake8>=7', 'isort>=5.13',
            'yapf==0.43.0'
        ],
        # peft pulls transformers; >=4.47 breaks `import mmpretrain.models` (its BLIP module)
        'benchmark': ['peft>=0.17', 'transformers>=4.40,<4.47'],
        # mmdet's tools/analysis_tools: analyze_logs.py plots with seaborn, benchmark.py needs
        # psutil
        'analysis': ['seaborn', 'psutil'],
    },
    license='Apache-2.0',
    zip_safe=False,
)
